"""The Ray parts of the trainer: `start_ray` connects (or starts a local cluster) and builds the two parts
`Trainer._build_parts` takes when `ray_workers` > 0: a `LearnerGroup` as the learner and `RayRollouts` as the
rollout source. The loop itself is the `Trainer`'s; RAE, metrics and checkpoints stay on the driver (whose
copy of the weights, on the CPU, the learner group updates after every step), so a run resumes with
`--resume` as before and a checkpoint is the same folder either way. Evaluation is driven from the driver
too, but every answer it needs is generated on the workers' engines (`RayRollouts.generator`).

GPUs: before any actor starts, `check_resources` refuses requests that are wrong for a run on CUDA
(`run_uses_cuda`; the rules are `config.values.ray_gpu_problem`: a whole GPU per learner rank, a share > 0 per
rollout worker) and requests the cluster can never place, the learner ranks' one-node placement group included.

What `RayRollouts` adds to a step's metrics: `train/staleness_max` and `train/staleness_mean` (updates between
the weights that played a game and the weights it trains), `train/stale_dropped`, `ray/worker_failures` (calls
to a worker that failed: it raised, or died), `ray/worker_restarts`, `ray/games_replayed` and
`time/rollout_wait_s`.

Opponent pools: the driver owns the pool (its list, draws, snapshots on disk and its one frozen copy, as in
one process); each drawn snapshot goes to the object store once, when the first batch that plays it is
submitted, as a plain transformers state dict (LoRA merged), and the workers play it in their own frozen pool
model. A pool game's `Match` names the snapshot drawn when it was planned (`pool_step`), so RAE's opponent
kinds and `train/pool/*` read the results as in one process.

Versions: the learner group's `version` is the number of updates done (the step), and a game's version is
the version of the weights that played it; sync mode uses only games of the current version.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from spiral_train.config.values import ray_gpu_problem
from spiral_train.config.views import LearnerRankSettings, RaySettings, WorkerSettings
from spiral_train.distributed.learner_group import LearnerGroup, learner_bundle, play_weights
from spiral_train.distributed.local_ray import init_local_ray
from spiral_train.distributed.messages import describe_resources
from spiral_train.distributed.remote_generation import RemoteGenerator
from spiral_train.distributed.rollouts import RolloutPool
from spiral_train.rollout.collector import Players
from spiral_train.rollout.records import POOL, GameResult, Match


def needed_resources(config: RaySettings) -> tuple[float, float]:
    """CPUs and GPUs that the run's actors ask Ray for."""
    cpus = config.ray_workers * config.ray_worker_cpus + config.ray_learners * config.ray_learner_cpus
    gpus = config.ray_workers * config.ray_worker_gpus + config.ray_learners * config.ray_learner_gpus
    return cpus, gpus


def run_uses_cuda(device: str, driver_has_gpu: bool, cluster_gpus: float) -> bool:
    """Whether the run's actors will use CUDA: device "cuda", or "auto" where the driver or the cluster has a
    GPU (an actor resolves "auto" on its own node, and an actor given no GPU there still sees them all)."""
    return device == "cuda" or (device == "auto" and (driver_has_gpu or cluster_gpus > 0))


def check_resources(config: RaySettings, uses_cuda: bool, nodes: Sequence[Mapping[str, float]]) -> None:
    """Fail at start, naming the options, where the actors' requests are wrong for CUDA
    (`config.values.ray_gpu_problem`) or where the cluster, whose alive nodes have `nodes` resources in all,
    can never place every actor (Ray would wait forever): the totals, each custom resource, and the learner
    ranks' placement group (`LearnerGroup`), whose bundles must all fit on one node."""
    problem = ray_gpu_problem(config, uses_cuda)
    if problem is not None:
        raise RuntimeError(problem)
    have: dict[str, float] = {}
    for node in nodes:
        for name, amount in node.items():
            have[name] = have.get(name, 0.0) + amount
    cpus, gpus = needed_resources(config)
    if cpus > have.get("CPU", 0.0) + 1e-9 or gpus > have.get("GPU", 0.0) + 1e-9:
        raise RuntimeError(
            f"the Ray cluster has {have.get('CPU', 0.0):g} CPUs and {have.get('GPU', 0.0):g} GPUs, but "
            f"ray_workers x ray_worker_cpus/gpus + ray_learners x ray_learner_cpus/gpus asks for {cpus:g} CPUs "
            f"and {gpus:g} GPUs: lower those options or add nodes"
        )
    for name, amount in config.ray_worker_resources.items():
        if config.ray_workers * amount > have.get(name, 0.0) + 1e-9:
            raise RuntimeError(
                f"ray_worker_resources asks for {config.ray_workers} x {amount:g} {name!r}, but the Ray cluster "
                f"has {have.get(name, 0.0):g}: start nodes with `ray start --resources` that provide it"
            )
    group = learner_bundle(config.ray_learner_cpus, config.ray_learner_gpus)
    need = {name: config.ray_learners * amount for name, amount in group.items()}
    if not any(all(node.get(k, 0.0) + 1e-9 >= v for k, v in need.items()) for node in nodes):
        each = ", ".join(describe_resources(node) for node in nodes) or "none"
        raise RuntimeError(
            f"the {config.ray_learners} learner ranks must share one node ({describe_resources(need)} in all: "
            f"ray_learners x ray_learner_cpus/gpus), but the Ray cluster's nodes have {each}: lower those options "
            "or add a larger node"
        )


def cluster_nodes() -> list[dict[str, float]]:
    """The total resources of each alive node of the connected Ray cluster."""
    import ray

    return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]


class RayParts(NamedTuple):
    learner: LearnerGroup
    rollouts: RayRollouts
    close: Callable[[], None]
    """Stops the actors, and the local Ray cluster if `start_ray` started it."""


def start_ray(
    config: RaySettings,
    worker: WorkerSettings,
    rank: LearnerRankSettings,
    model: torch.nn.Module,
    version: int,
    run_dir: Path | None = None,
) -> RayParts:
    """Connect to `ray_address` (or start a local cluster), check the actors' requests against it
    (`check_resources`), then start the learner ranks (each sent `rank`) and rollout workers (each sent `worker`).

    The actors load the run's original model (`worker.model`, `rank.model`) for its shape and tokenizer, then get
    `model`'s
    current weights: checkpoint folders are pruned, so a worker restarted later could not count on one.
    `run_dir`: the run's folder, which a learner rank's failure names with its last checkpoint.
    """
    import ray

    owns_ray = False
    cpus, _ = needed_resources(config)
    if not ray.is_initialized():
        # A local cluster gets a logical CPU per actor at least: Ray would otherwise leave an actor
        # unplaced forever on a small machine (2 workers + a learner on 2 cores), and the run would hang.
        if config.ray_address is None:  # a local cluster that reaches nothing beyond the machine
            init_local_ray(max(os.cpu_count() or 1, math.ceil(cpus)), log_to_driver=True)
        else:
            ray.init(address=config.ray_address, log_to_driver=True)
        owns_ray = True
    group: LearnerGroup | None = None
    rollouts: RayRollouts | None = None

    def close() -> None:
        if rollouts is not None:
            rollouts.close()
        if group is not None:
            group.shutdown()
        if owns_ray and ray.is_initialized():
            ray.shutdown()

    try:
        nodes = cluster_nodes()
        cluster_gpus = sum(node.get("GPU", 0.0) for node in nodes)
        check_resources(config, run_uses_cuda(config.device, torch.cuda.is_available(), cluster_gpus), nodes)
        group = LearnerGroup(config, rank, model, None, version=version, run_dir=run_dir)
        rollouts = RayRollouts(config, worker, group)
    except BaseException:
        close()
        raise
    return RayParts(group, rollouts, close)


class RayRollouts:
    """The rollout source on Ray: a `RolloutPool` of workers, playing with the learner group's newest weights.

    In async mode the trainer submits one batch ahead, so the workers play while the learner updates.
    """

    def __init__(self, config: RaySettings, worker: WorkerSettings, group: LearnerGroup) -> None:
        self.config = config
        self.group = group
        self.pool_refs: dict[int, Any] = {}
        """Snapshot step -> object reference of its weights, while a submitted game may still play it."""
        self.workers = RolloutPool(config, worker, self.pool_refs.__getitem__)
        self.planned: list[Match] = []
        """Games submitted since the last `collect`; the pool cuts them into chunks together."""
        self.drawn: int | None = None
        """The snapshot the latest submitted batch plays (kept in the object store for the next plan)."""
        self.sample_versions: dict[int, list[int]] = {}
        """Per trained step, the weight version of each game it trained on (what the staleness rule bounds)."""

    def submit(self, matches: Sequence[Match], players: Players) -> None:
        steps = {m.pool_step for m in matches if m.pool_step is not None}
        self.drawn = next(iter(steps)) if steps else None
        if self.drawn is not None and self.drawn not in self.pool_refs:  # the pool seat holds it now
            import ray

            self.pool_refs[self.drawn] = ray.put(play_weights(players[POOL].generator.model))  # type: ignore[union-attr]
        self.planned.extend(matches)

    def collect(self) -> tuple[list[GameResult], dict[str, float]]:
        version = self.group.version
        matches, self.planned = self.planned, []
        t0 = time.perf_counter()
        results = self.workers.collect(matches, version, self.group.weights_ref, self.config.games_per_step)
        wait = time.perf_counter() - t0
        for index, result in enumerate(results):  # numbered in the batch, as the collector numbers them
            result.index = index
            for turn in result.turns:
                turn.game = index
        staleness = [version - r.version for r in results]
        self.sample_versions[version + 1] = [r.version for r in results]
        stats = self.workers.take_stats()
        # keep a snapshot's weights in the object store only while a game may still play it
        needed = {m.pool_step for m in self.workers.outstanding() if m.pool_step is not None}
        for step in set(self.pool_refs) - needed - {self.drawn}:
            del self.pool_refs[step]
        record = {
            "train/staleness_max": max(staleness),
            "train/staleness_mean": sum(staleness) / len(staleness),
            "train/stale_dropped": stats.dropped_stale,
            "ray/worker_failures": stats.failures,
            "ray/worker_restarts": stats.restarts,
            "ray/games_replayed": stats.replayed,
            "time/rollout_wait_s": wait,
        }
        return results, record

    def generator(self) -> RemoteGenerator:
        """The driver's `Generator` (evaluation, reasoning benchmarks): each call split over the workers' engines."""
        return RemoteGenerator(self.workers, self.group)

    def close(self) -> None:
        self.workers.shutdown()
