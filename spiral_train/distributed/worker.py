"""A rollout worker: its own model copy, generator and collector, playing the games the driver sends it.

It runs as a Ray actor (see `rollouts.RolloutPool`) but is a plain class, so it carries no Ray import. The
driver sends games as the trainer's own `records.Match`es (plain data: seat kinds, never models) and gets back
`records.GameResult`s tagged with the weight version that played them, which is what the staleness rule and
the sync-mode check read. A worker that Ray restarts comes back with version -1 (no weights yet) and
plays nothing until the driver sends the current weights again.

Generation backend: the one `WorkerSettings.generation` names (`generation.make_generator`). With "vllm" each
worker holds its own vLLM engine, run inside the actor's process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`, forced here:
an engine in a child process would cost a process more per worker and a weights folder on disk per sync) and with
vLLM's single-process executor (one device per engine, so vLLM never starts Ray itself). `set_weights` loads what
the driver sends (a plain transformers state dict, whatever produced it, read from Ray's shared memory without a
copy: `shared_weights`) into the worker's HF model, then `generator.sync_weights()` hands that whole state dict to
the engine; with transformers the sync is a no-op. The worker's HF model then only holds weights, so with vLLM it
stays on the CPU: on a GPU worker the device memory is the engine's alone (its KV cache:
`vllm_gpu_memory_utilization` of the GPU Ray gave the actor, `ray_worker_gpus`, a fraction being fine; on CPU
`vllm_kv_cache_mb`, default 256 MiB).

The engine never sleeps here: a worker only generates, and Ray gives it its own share of the device, so there
is no learner to free memory for (sleep mode matters only in the one-process trainer, where engine and learner
share a GPU), and sleeping would add a wake-up (weights and KV cache re-allocated) before every chunk. A learner
rank takes a whole GPU, so a worker shares its GPU only with other workers (`ray_worker_gpus` below 1), whose
`vllm_gpu_memory_utilization` may not exceed that share (checked at start). A checkpoint opponent
(`opponent=DIR`) is a frozen transformers model on the worker's device.

Opponent pools: a "pool" seat plays the snapshot its `Match.pool_step` names. Its weights (a plain
transformers state dict, LoRA merged) travel through the Ray object store, passed along with the chunk as a
reference the worker fetches only when that snapshot is not the one its single frozen pool model holds, so a
worker keeps one extra model whatever the pool size, and loads a snapshot once per change of draw.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from typing import Any

import torch
from transformers.utils import logging as hf_logging

from spiral_train.config.views import WorkerSettings
from spiral_train.distributed.shared_weights import Packed, unpack
from spiral_train.models.loading import load_model, resolve_device
from spiral_train.rollout.collector import Collector, scripted
from spiral_train.rollout.generation import Generation, Generator, make_generator
from spiral_train.rollout.policy import ModelPolicy, frozen_checkpoint_policy, frozen_copy, model_policy
from spiral_train.rollout.records import FROZEN, LEARNER, POOL, RANDOM, STRONG, GameResult, Match


def sample_seed(run_seed: int, matches: Sequence[Match]) -> int:
    """The sampling seed of a chunk of games, from the games alone: a chunk played again after a worker died
    (on any worker) samples exactly what it would have, so a sync run with a kill equals one without."""
    return random.Random(repr((run_seed, [m.seed for m in matches]))).randrange(2**63)


class RolloutWorker:
    def __init__(self, settings: WorkerSettings, threads: int = 1) -> None:
        """`settings.model` is plain: the driver sends whole state dicts, LoRA adapters merged in (a LoRA source is
        merged too)."""
        torch.set_num_threads(max(1, threads))
        hf_logging.disable_progress_bar()
        self.settings = settings
        self.device = resolve_device(settings.device)
        uses_vllm = settings.generation.generator == "vllm"
        if uses_vllm:  # in this process, whatever the driver's environment says (see the module docstring)
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        # with vLLM the HF model only holds the weights the engine is given: it never runs, so it stays on CPU
        model_device = torch.device("cpu") if uses_vllm else self.device
        self.model, tokenizer, _ = load_model(settings.model, model_device, log=lambda *_: None)
        self.model.requires_grad_(False)
        self.generator: Generator = make_generator(settings.generation, self.model, tokenizer)
        self.rng = torch.Generator(device=self.device)
        self.policy = model_policy(self.generator, tokenizer, settings.sampling, self.rng)
        self.players: dict[str, Any] = {LEARNER: self.policy, RANDOM: scripted(RANDOM), STRONG: scripted(STRONG)}
        """Seat kind -> who plays it here (the pool's seat joins with the first snapshot loaded)."""
        if settings.frozen_opponent is not None:  # a checkpoint, or a LoRA one
            self.players[FROZEN] = frozen_checkpoint_policy(
                settings.frozen_opponent, self.device, self.rng, settings.sampling, settings.generation
            )
        self.collector = Collector(settings.num_envs, settings.game_kwargs)
        self.version = -1
        self.sync_error: BaseException | None = None
        self.pool: ModelPolicy | None = None
        """The frozen seat of pool games (built at the first pool game), holding snapshot `pool_step`."""
        self.pool_step: int | None = None
        self.pool_loads = 0
        """How many snapshots were loaded into the pool model (once per change of the snapshot asked for)."""

    def set_weights(self, version: int, weights: Packed | None) -> int:
        """Take the driver's weights (`learner_group.play_weights`): into the HF model, then into the generator (a
        vLLM engine's own copy). None: the run's starting weights (version 0 of a new run), which this worker
        loaded from `source` itself."""
        self.version = -1  # a failed sync must not leave a worker playing old weights under a new version
        try:
            if weights is not None:
                self.model.load_state_dict(unpack(weights))
                self.generator.sync_weights()
        except BaseException as err:
            self.sync_error = err  # the driver does not wait on this call: its next `play` reports the error
            raise
        self.sync_error = None
        self.version = version
        return version

    def close(self) -> None:
        """Shut a vLLM engine down (and remove any weights folder it wrote); `RolloutPool.shutdown` calls it
        before killing the actor. Nothing to do for transformers."""
        close = getattr(self.generator, "close", None)
        if close is not None:
            close()

    def pid(self) -> int:
        return os.getpid()

    def generate(self, prompt_ids: list[list[int]], settings: dict[str, Any], seed: int) -> list[Generation]:
        """Answers to token-id prompts from this worker's engine, with the weights it holds, sampled from `seed`:
        the driver's evaluation and reasoning benchmarks run here (`remote_generation.RemoteGenerator`).
        `settings` are `Generator.generate`'s keyword arguments but the RNG."""
        if self.sync_error is not None:
            raise RuntimeError(f"this worker failed to load the weights the driver sent: {self.sync_error!r}")
        rng = torch.Generator(device=self.device).manual_seed(seed)
        return self.generator.generate(prompt_ids, generator=rng, **settings)

    def play(
        self, matches: Sequence[Match], seed: int, keep_transcripts: bool, pool: tuple[int, Any] | None = None
    ) -> tuple[int, int, list[GameResult]]:
        """Play a chunk: (the weight version that played it, this process's pid, the results in order); `pool`
        is (snapshot step, its weights or their object reference) when the chunk has pool games.

        `pool` is a tuple so that Ray passes a reference inside it as is (it resolves only top-level arguments):
        the weights are fetched only when this worker does not hold that snapshot already.
        """
        if self.sync_error is not None:
            raise RuntimeError(f"this worker failed to load the weights the driver sent: {self.sync_error!r}")
        if self.version < 0:  # restarted by Ray since the driver last sent weights: play nothing stale
            return self.version, os.getpid(), []
        if pool is not None:
            self._load_pool(*pool)
        for match in matches:
            if match.pool_step is not None and match.pool_step != self.pool_step:
                raise ValueError(
                    f"a pool seat of snapshot {match.pool_step} but this worker holds snapshot {self.pool_step}: the "
                    "driver must send that snapshot's weights with the chunk (this is a bug)"
                )
        self.rng.manual_seed(seed)
        results = self.collector.play(matches, self.players, keep_transcripts=keep_transcripts)
        for result in results:
            result.version = self.version
        return self.version, os.getpid(), results

    def _load_pool(self, step: int, weights: Any) -> None:
        """Hold snapshot `step` in the one frozen pool model (fetched and loaded only if it is another one)."""
        if step == self.pool_step:
            return
        if not isinstance(weights, dict):  # an object reference: fetch it now that it is needed
            import ray

            weights = ray.get(weights)
        if self.pool is None:
            # the same plain transformers model as the learner seat's (on the device: with vLLM that one stays on CPU)
            g = self.settings.generation
            self.pool = self.players[POOL] = frozen_copy(
                self.policy, self.model, g.generation_batch_size, g.bf16, self.device
            )
        self.pool_step = None  # a load that fails half way holds no snapshot
        self.pool.generator.model.load_state_dict(unpack(weights))
        self.pool_step = step
        self.pool_loads += 1
