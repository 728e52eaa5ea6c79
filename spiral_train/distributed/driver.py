"""`RayTrainer`: the `Trainer` loop, with games played on Ray rollout workers and the update on a learner group.

Nothing of the loop is copied: `Trainer.train_step` calls `self.collect(matches)` (overridden here to use the
`RolloutPool`) and `self.learner.update(turns)` (here a `LearnerGroup`, which also copies the new weights
into the driver's model). RAE, evaluation (on the driver's copy of the weights), metrics and checkpoints are
the `Trainer`'s own, so a run resumes with `--resume` as before and a checkpoint is the same folder either
way. What this adds per step: `train/staleness_max` and `train/staleness_mean` (updates between the weights
that played a game and the weights it trains), `train/stale_dropped`, `ray/worker_failures`,
`ray/worker_restarts` and `ray/games_replayed`.

Opponent pools: the driver owns the pool (its list, draws, snapshots on disk and its one frozen copy, as in
one process); each drawn snapshot goes to the object store once, as a plain transformers state dict (LoRA
merged), and the workers play it in their own frozen pool model. A pool game's `Match` names the snapshot
drawn when it was planned (`pool_step`), so RAE's opponent kinds and `train/pool/*` read the results as in
one process.

Versions: the learner group's `version` is the number of updates done (the step), and a game's version is
the version of the weights that played it; sync mode uses only games of the current version.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from spiral_train import lora
from spiral_train.config import TrainConfig
from spiral_train.distributed.learner_group import LearnerGroup
from spiral_train.distributed.rollouts import RolloutPool
from spiral_train.generation import Generator, HFGenerator
from spiral_train.seats import GameResult, Match
from spiral_train.trainer import Trainer


def needed_resources(config: TrainConfig) -> tuple[float, float]:
    """CPUs and GPUs that the run's actors ask Ray for."""
    cpus = config.ray_workers * config.ray_worker_cpus + config.ray_learners * config.ray_learner_cpus
    gpus = config.ray_workers * config.ray_worker_gpus + config.ray_learners * config.ray_learner_gpus
    return cpus, gpus


def check_resources(cpus: float, gpus: float) -> None:
    """Fail at start, naming the options, where the cluster can never place every actor (Ray would wait)."""
    import ray

    have = ray.cluster_resources()
    if cpus > have.get("CPU", 0.0) + 1e-9 or gpus > have.get("GPU", 0.0) + 1e-9:
        raise RuntimeError(
            f"the Ray cluster has {have.get('CPU', 0.0):g} CPUs and {have.get('GPU', 0.0):g} GPUs, but "
            f"ray_workers x ray_worker_cpus/gpus + ray_learners x ray_learner_cpus/gpus asks for {cpus:g} CPUs "
            f"and {gpus:g} GPUs: lower those options or add nodes"
        )


class RayTrainer(Trainer):
    def __init__(self, config: TrainConfig, run_dir: Path, resume: bool = False, log=print) -> None:
        import ray

        super().__init__(config, run_dir, resume=resume, log=log)
        self._owns_ray = False
        cpus, gpus = needed_resources(config)
        if not ray.is_initialized():
            # A local cluster gets a logical CPU per actor at least: Ray would otherwise leave an actor
            # unplaced forever on a small machine (2 workers + a learner on 2 cores), and the run would hang.
            local = {"num_cpus": max(os.cpu_count() or 1, math.ceil(cpus))} if config.ray_address is None else {}
            ray.init(address=config.ray_address, include_dashboard=False, log_to_driver=True, **local)
            self._owns_ray = True
        self.rollouts: RolloutPool | None = None
        self.group: LearnerGroup | None = None
        self.pool_refs: dict[int, Any] = {}
        """Snapshot step -> object reference of its weights, while a drawn or outstanding game needs it."""
        try:
            check_resources(cpus, gpus)
            # Actors load `self.source`, the run's original model, for its shape and tokenizer, then get the current
            # weights; checkpoint folders are pruned, so a worker restarted later could not count on finding one.
            self.group = LearnerGroup(config, self.source, self.model, self.learner.state_dict(), version=self.step)
            self.rollouts = RolloutPool(config, self.source, self.pool_refs.__getitem__)
        except BaseException:
            self.shutdown()
            raise
        self.learner = self.group  # the loop's `self.learner.update` and `save` now go to the group
        self.sample_versions: dict[int, list[int]] = {}
        """Per trained step, the weight version of each game it trained on (what the staleness rule bounds)."""
        self._queued_ahead = False
        self._rollout_record: dict[str, Any] = {}

    def build_generator(self) -> Generator:
        """Transformers, whatever `generator` says: the workers sample, the driver only evaluates, and a vLLM
        engine here would hold device memory outside what Ray accounts for."""
        c = self.config
        return HFGenerator(self.model, self.tokenizer, c.generation_batch_size, c.bf16)

    def matches(self) -> list[Match]:
        """The `Trainer`'s games; when they hold pool games, the drawn snapshot goes to the object store."""
        matches = super().matches()
        pool = self.pool
        if pool is None or pool.drawn is None or pool.policy is None:
            return matches
        if pool.drawn not in self.pool_refs:  # the pool's frozen copy holds the drawn snapshot now
            import ray

            weights = lora.merged_state_dict(pool.policy.generator.model)
            self.pool_refs[pool.drawn] = ray.put({name: tensor.to("cpu") for name, tensor in weights.items()})
        return matches

    def collect(self, matches: list[Match]) -> list[GameResult]:
        assert self.rollouts is not None and self.group is not None
        c = self.config
        if c.async_mode and not self._queued_ahead:
            matches = matches + self.matches()  # one batch ahead, so workers play while the learner updates
            self._queued_ahead = True
        version = self.group.version
        t0 = time.time()
        results = self.rollouts.collect(matches, version, self.group.weights_ref, c.games_per_step)
        wait = time.time() - t0
        for index, result in enumerate(results):  # numbered in the batch, as the collector numbers them
            result.index = index
            for turn in result.turns:
                turn.game = index
        staleness = [version - r.version for r in results]
        self.sample_versions[self.step + 1] = [r.version for r in results]
        stats = self.rollouts.take_stats()
        self._rollout_record = {
            "train/staleness_max": max(staleness),
            "train/staleness_mean": sum(staleness) / len(staleness),
            "train/stale_dropped": stats.dropped_stale,
            "ray/worker_failures": stats.failures,
            "ray/worker_restarts": stats.restarts,
            "ray/games_replayed": stats.replayed,
            "time/rollout_wait_s": wait,
        }
        if self.pool is not None:
            # keep a snapshot's weights in the object store only while a game may still play it
            needed = {m.pool_step for m in self.rollouts.outstanding() if m.pool_step is not None}
            for step in set(self.pool_refs) - needed - {self.pool.drawn}:
                del self.pool_refs[step]
        return results

    def train_step(self) -> dict[str, Any]:
        record = super().train_step()
        record.update(self._rollout_record)
        return record

    def run(self) -> Path:
        try:
            return super().run()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Stop this run's actors (and the local Ray cluster, if this trainer started it)."""
        import ray

        if self.rollouts is not None:
            self.rollouts.shutdown()
            self.rollouts = None
        if self.group is not None:
            self.group.shutdown()
            self.group = None
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
            self._owns_ray = False
