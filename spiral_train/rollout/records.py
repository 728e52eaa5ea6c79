"""Who plays a game, as plain data: a `Match` names each seat's *kind*, a `GameResult` is what came of it.

A seat kind says who sits in a seat, never which object: "learner" (the policy being trained), "random" and
"strong" (the game's reference agents), "frozen" (a fixed checkpoint, the `opponent` option), "pool" (a past
snapshot of the learner, `pool_step`) and "exploiter" (evaluation: a best response to the measured policy).
Each process that plays games maps kinds to its own players (`collector.Players`): the trainer to its models,
a Ray worker to its copies. Both records are plain, picklable data, so the same `Match` is played in this
process or sent to a worker as is, and RAE, evaluation, pools and metrics read the seats from the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the learner imports `Turn` on machines without the games (benchmarks/gpu_check.py)
    from spiral_envs.play import Outcome

LEARNER = "learner"
RANDOM = "random"
STRONG = "strong"
FROZEN = "frozen"
POOL = "pool"
EXPLOITER = "exploiter"
SEAT_KINDS = (LEARNER, RANDOM, STRONG, FROZEN, POOL, EXPLOITER)


@dataclass(frozen=True)
class Match:
    """One game to play: the env id, its seed, and the kind of each seat (role -> kind)."""

    env_id: str
    seed: int
    seats: dict[str, str]
    pool_step: int | None = None
    """The snapshot a "pool" seat plays: the one drawn when the game was planned, not when it is played (a
    game replayed after a worker failure, or queued a step ahead in async mode, keeps its own snapshot)."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.seats.values()) - set(SEAT_KINDS))
        if unknown:
            raise ValueError(f"seat kinds {unknown} are unknown; use {list(SEAT_KINDS)}")
        if (POOL in self.seats.values()) != (self.pool_step is not None):
            raise ValueError(f"a pool seat needs its pool_step and only a pool seat has one: {self}")

    def learner_roles(self) -> list[str]:
        """The roles the learner plays, in role order (both in self-play)."""
        return [role for role in sorted(self.seats) if self.seats[role] == LEARNER]

    def opponent_kind(self) -> str:
        """What the learner faced, for RAE and metrics: "self" in self-play, else the other seat's kind."""
        others = {kind for kind in self.seats.values() if kind != LEARNER}
        if not others:
            return "self"
        if len(others) > 1:
            raise ValueError(f"a game has one opponent kind, this one has {sorted(others)}")
        return others.pop()


def other_role(role: str) -> str:
    """The other player of a two-player game."""
    from spiral_envs.core import PLAYER_NAMES

    return PLAYER_NAMES[1] if role == PLAYER_NAMES[0] else PLAYER_NAMES[0]


@dataclass
class Turn:
    """One answer of the learner: a training sample."""

    env_id: str
    role: str
    game: int
    prompt_ids: list[int]
    response_ids: list[int]
    logprobs: list[float]
    valid: bool
    truncated: bool
    advantage: float = 0.0


@dataclass(frozen=True)
class Score:
    """One role's result in one game, the single rule the trainer, evaluation, population and pools count by:
    a win, draw or loss by the sign of its return, `points` 1 / 0.5 / 0, `invalid` if its own answer ended the
    game, `ended_by` who ended it with an invalid answer as this role sees it (None, "self", "opponent"), and
    the game's own `figures` for this role (`TextGame.figures`)."""

    value: float
    points: float
    invalid: bool
    ended_by: str | None
    figures: dict[str, float]

    @property
    def win(self) -> bool:
        return self.value > 0

    @property
    def draw(self) -> bool:
        return self.value == 0

    @property
    def loss(self) -> bool:
        return self.value < 0


@dataclass
class GameResult:
    """A game played: the final returns per role, how it ended, the learner's training samples and the
    transcript (the env's own, with each prompt added when kept). `index` is its place in the batch, `version`
    the weights that played it (the learner's step; Ray workers report it)."""

    match: Match
    index: int = 0
    returns: dict[str, float] = field(default_factory=dict)
    outcome: Outcome | None = None
    turns: list[Turn] = field(default_factory=list)
    transcript: list[dict[str, Any]] = field(default_factory=list)
    version: int = 0

    def score(self, role: str) -> Score:
        """`role`'s result in this finished game."""
        if self.outcome is None:
            raise ValueError(f"game {self.index} ({self.match.env_id}, seed {self.match.seed}) has not ended")
        value = self.returns[role]
        offender = self.outcome.offender
        return Score(
            value=value,
            points=1.0 if value > 0 else 0.5 if value == 0 else 0.0,
            invalid=offender == role,
            ended_by=None if offender is None else "self" if offender == role else "opponent",
            figures=self.outcome.figures.get(role, {}),
        )
