"""The driver's generator on Ray: every `generate` call is split over the rollout workers' engines.

On Ray the driver holds no model on a device. What it still samples, evaluation games, strategy probes and
reasoning benchmarks, goes through a `RemoteGenerator`: the driver keeps playing the envs (cheap) and sends
each batched generation call to the workers, where the engines are, as plain data (token ids in, `Generation`s
out). The workers are first sent the learner group's current weights where they lack them.

A call's prompts are cut into one contiguous piece per live worker, each sampled from its own seed drawn from
the caller's RNG, so a call is reproducible for a given number of live workers. A piece whose worker fails is
played again on another live worker with the same seed (the worker, killed first if it raised, is then probed
until Ray has it back, as for a training chunk); after `ATTEMPTS` failures of one piece the call fails with
the last error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from spiral_train.rollout.generation import Generation

if TYPE_CHECKING:
    from spiral_train.distributed.learner_group import LearnerGroup
    from spiral_train.distributed.rollouts import RolloutPool

ATTEMPTS = 3
"""Tries of one piece of a call, each on a live worker, before the call fails."""


class RemoteGenerator:
    """A `Generator` whose engines are the rollout workers' (see the module docstring)."""

    def __init__(self, pool: RolloutPool, group: LearnerGroup) -> None:
        self.pool = pool
        self.group = group

    def sync_weights(self) -> None:
        """Nothing to do here: workers are sent the current weights before they generate."""

    def sleep(self) -> None:
        """Nothing to free on the driver."""

    def generate(
        self,
        prompt_ids: list[list[int]],
        *,
        temperature: float,
        max_new_tokens: int,
        generator: torch.Generator,
        top_k: int = 0,
        top_p: float = 1.0,
        stop_ids: Sequence[int] = (),
    ) -> list[Generation]:
        import ray
        from ray.exceptions import RayError

        if not prompt_ids:
            return []
        settings: dict[str, Any] = {
            "temperature": temperature,
            "max_new_tokens": max_new_tokens,
            "top_k": top_k,
            "top_p": top_p,
            "stop_ids": list(stop_ids),
        }
        workers = self._ready()
        size = -(-len(prompt_ids) // len(workers))
        pieces = [prompt_ids[start : start + size] for start in range(0, len(prompt_ids), size)]
        seeds = torch.randint(0, 2**63 - 1, (len(pieces),), generator=generator, device=generator.device).tolist()
        calls = {i: self._send(workers[i % len(workers)], pieces[i], settings, seeds[i]) for i in range(len(pieces))}
        failures = [0] * len(pieces)
        answers: list[list[Generation] | None] = [None] * len(pieces)
        while calls:
            for i, (w, ref) in list(calls.items()):
                try:
                    answers[i] = ray.get(ref)
                except RayError as err:  # it died, or raised: the pool replaces it either way
                    self.pool.mark_failed(w, err)
                    failures[i] += 1
                    if failures[i] >= ATTEMPTS:
                        raise RuntimeError(
                            f"generation on the rollout workers failed {ATTEMPTS} times for one piece of a call "
                            f"({len(pieces[i])} prompts); the last error: {err}"
                        ) from err
                    calls[i] = self._send(self._ready()[0], pieces[i], settings, seeds[i])
                    continue
                del calls[i]
        return [generation for piece in answers for generation in piece or []]

    def _ready(self) -> list[int]:
        workers = self.pool.ready_workers(self.group.version, self.group.weights_ref)
        if not workers:
            raise RuntimeError("no rollout worker is alive to generate on; see the Ray logs for why they died")
        return workers

    def _send(self, w: int, piece: list[list[int]], settings: dict[str, Any], seed: int) -> tuple[int, Any]:
        return w, self.pool.workers[w].generate.remote(piece, settings, seed)
