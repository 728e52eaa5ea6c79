"""The trainer's two swappable parts, and the in-process rollout source.

`Trainer` is built from a rollout source (where a step's games are played) and a learner (who turns the
step's turns into new weights), chosen in one place, `Trainer._build_parts`:

| `ray_workers` | rollout source | learner |
|---|---|---|
| 0 (default) | `LocalRollouts`: the trainer's own `Collector` | `learner.Learner`, in this process |
| > 0 | `distributed.driver.RayRollouts`: rollout-worker actors | `distributed.learner_group.LearnerGroup` |

The loop calls only what these protocols name, so sync and async modes, one process and Ray, run the same
loop. What crosses between the parts is plain data: `records.Match` in, `records.GameResult` and `records.Turn` out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from spiral_train.rollout.collector import Collector, Players
from spiral_train.rollout.records import GameResult, Match, Turn


class RolloutSource(Protocol):
    """Plays the games the trainer plans; one `collect` per training step."""

    def submit(self, matches: Sequence[Match], players: Players) -> None:
        """Queue games just planned. `players` maps seat kinds to who plays them *now*: a pool seat's
        snapshot is read before the next plan may draw another."""

    def collect(self) -> tuple[list[GameResult], dict[str, float]]:
        """One step's batch of `games_per_step` results, numbered 0.. in the order they were planned, and this
        source's own metrics for the step (`LocalRollouts`: the time spent sampling, tokenising and in the
        envs, `time/generation_s`, `time/tokenize_s`, `time/env_s`)."""

    def close(self) -> None:
        """Free what the source holds (worker actors); the trainer calls it once, when the run ends."""


class UpdatesWeights(Protocol):
    """The learner: one PPO-style update per step, and the state a checkpoint keeps."""

    def update(self, turns: Sequence[Turn]) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class LocalRollouts:
    """Plays each submitted batch at once, in this process, with the trainer's collector and players."""

    def __init__(self, collector: Collector, keep_transcripts: bool) -> None:
        self.collector = collector
        self.keep_transcripts = keep_transcripts
        self.finished: list[GameResult] = []
        self.seconds: dict[str, float] = {}

    def submit(self, matches: Sequence[Match], players: Players) -> None:
        self.collector.take_seconds()  # not the evaluation's games, which share the collector
        results = self.collector.play(matches, players, keep_transcripts=self.keep_transcripts)
        for part, seconds in self.collector.take_seconds().items():
            self.seconds[part] = self.seconds.get(part, 0.0) + seconds
        for result in results:  # numbered in the step's batch, after any batch submitted before
            result.index += len(self.finished)
            for turn in result.turns:
                turn.game = result.index
        self.finished.extend(results)

    def collect(self) -> tuple[list[GameResult], dict[str, float]]:
        results, self.finished = self.finished, []
        seconds, self.seconds = self.seconds, {}
        return results, {f"time/{part}_s": value for part, value in seconds.items()}

    def close(self) -> None:
        pass
