"""Opponent pools (fictitious self-play): a share of games against past snapshots of the policy.

In pure self-play the opponent moves with the learner, so the learner can forget how to beat strategies it
beat before and go round in circles. Playing a share of games against snapshots of its past selves keeps those
strategies among its opponents (fictitious self-play; spiral-rl 0.2 calls it FSP).

- Every `pool_every` steps, from step 0, the learner's weights (before that step's update) are written to
  `run_dir/pool/step-NNNNNN/model.safetensors`: weights only, into a temporary folder renamed into place, like
  checkpoints. The pool keeps the newest `pool_size` snapshots.
- The pool's list and its draw RNG go into the checkpoint state, so a resumed run has the same pool and draws
  the same opponents. A dropped snapshot's folder is deleted only once a checkpoint no longer names it (at
  `prune`, after each save), so the latest checkpoint can always be resumed, whatever instant the crash hit.
- Memory: ONE frozen copy of the model, whatever the pool size. One snapshot is drawn per step, uniformly over
  the pool, and loaded into that copy (skipped if it is already loaded). All of a step's pool games play that
  snapshot, so their turns go to its own generator in one batched call per collector tick. A draw per game
  would need several models in memory, or weight swaps that split each tick's batch; across steps the draws
  still cover the pool uniformly.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model

from spiral_envs.core import PLAYER_NAMES
from spiral_train.checkpoint import write_folder_atomically
from spiral_train.config.views import PoolSettings
from spiral_train.rollout.policy import ModelPolicy, frozen_copy
from spiral_train.rollout.records import GameResult

POOL_DIR = "pool"
WEIGHTS_FILE = "model.safetensors"


class OpponentPool:
    """Snapshots of the learner on disk, and the one frozen model that plays the drawn snapshot."""

    def __init__(
        self, root: Path, every: int, share: float, size: int, seed: int, batch_size: int = 64, bf16: bool = False
    ) -> None:
        self.root = root
        self.every = every
        self.share = share
        self.size = size
        self.batch_size = batch_size
        self.bf16 = bf16
        self.steps: list[int] = []
        """Snapshot steps in the pool, oldest first."""
        self.rng = random.Random(seed)
        """Its own RNG, so the trainer's game seeds are those of the same run without a pool."""
        self.policy: ModelPolicy | None = None
        """The frozen seat of pool games (built at the first draw)."""
        self.drawn: int | None = None
        """The snapshot this step's pool games play."""
        self._loaded: int | None = None

    @classmethod
    def from_settings(cls, config: PoolSettings, run_dir: Path) -> OpponentPool | None:
        """The run's pool under `run_dir`, or None when pools are off (`pool_every` 0)."""
        if config.pool_every == 0:
            return None
        return cls(
            run_dir / POOL_DIR,
            config.pool_every,
            config.pool_share,
            config.pool_size,
            config.seed,
            config.generation_batch_size,
            config.bf16,
        )

    def path(self, step: int) -> Path:
        return self.root / f"step-{step:06d}"

    def snapshot(self, step: int, model: torch.nn.Module) -> None:
        """Add the model's weights as the snapshot of `step`, if `step` is a snapshot step and not yet in."""
        if step % self.every != 0 or step in self.steps:
            return
        # a folder of this step may exist: written before a crash, after the checkpoint we resumed from
        write_folder_atomically(self.path(step), lambda tmp: save_model(model, str(tmp / WEIGHTS_FILE)))
        self.steps.append(step)
        del self.steps[: -self.size]

    def plan(
        self, step: int, model: torch.nn.Module, learner: ModelPolicy, games: int
    ) -> tuple[ModelPolicy | None, dict[int, str]]:
        """This step's pool games as {game index: the learner's role}, and the seat that plays against it.

        Takes this step's snapshot first (so the pool is never empty when asked), draws one snapshot, and
        spreads round(share * games) pool games evenly over the step's games, so pool and self-play games are
        in flight together; the learner's role alternates from one pool game to the next.
        """
        self.snapshot(step, model)
        count = round(self.share * games)
        if count == 0:
            self.drawn = None
            return None, {}
        self.drawn = self.rng.choice(self.steps)
        policy = self._load(self.drawn, model, learner)
        indices = [j * games // count for j in range(count)]
        roles = {i: PLAYER_NAMES[(step + j) % 2] for j, i in enumerate(indices)}
        return policy, roles

    def _load(self, step: int, model: torch.nn.Module, learner: ModelPolicy) -> ModelPolicy:
        if self.policy is None:
            self.policy = frozen_copy(learner, model, self.batch_size, self.bf16)
        if self._loaded != step:
            frozen = self.policy.generator.model
            device = next(frozen.parameters()).device
            load_model(frozen, str(self.path(step) / WEIGHTS_FILE), strict=True, device=str(device))
            self._loaded = step
        return self.policy

    def stats(self, results: Sequence[GameResult]) -> dict[str, float]:
        """`train/pool/share` of games played vs the pool, the learner's `train/pool/win_rate` in them, and
        `train/pool/opponent_step`, the mean snapshot step they played (in Ray's async mode a batch can hold
        games planned before the latest draw)."""
        record: dict[str, float] = {"train/pool/size": len(self.steps)}
        pool_games = [r for r in results if r.match.pool_step is not None]
        record["train/pool/share"] = len(pool_games) / max(1, len(results))
        if pool_games:
            wins = [r.score(role).win for r in pool_games for role in r.match.learner_roles()]
            record["train/pool/win_rate"] = sum(wins) / len(wins)
            record["train/pool/opponent_step"] = sum(r.match.pool_step or 0 for r in pool_games) / len(pool_games)
        return record

    def state_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "rng": self.rng.getstate()}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore the pool of a checkpoint; snapshots written after that checkpoint are deleted."""
        state = state or {"steps": [], "rng": self.rng.getstate()}
        missing = [str(self.path(s)) for s in state["steps"] if not (self.path(s) / WEIGHTS_FILE).exists()]
        if missing:
            raise FileNotFoundError(
                f"the checkpoint's opponent pool names snapshots that are gone: {missing}; restore them from a "
                "copy of the run folder, or start a new run"
            )
        self.steps = list(state["steps"])
        self.rng.setstate(state["rng"])
        self._loaded = None
        self.prune()

    def prune(self) -> None:
        """Delete snapshot folders the pool no longer names (call after a checkpoint that no longer names them)."""
        if not self.root.exists():
            return
        kept = {self.path(s).name for s in self.steps}
        for folder in self.root.iterdir():
            stray_tmp = folder.name.startswith(".tmp-") and not folder.name.endswith(f"-{os.getpid()}")
            if (folder.name.startswith("step-") and folder.name not in kept) or stray_tmp:
                shutil.rmtree(folder, ignore_errors=True)
