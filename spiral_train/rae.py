"""Role-conditioned Advantage Estimation (SPIRAL, section 3.3).

In a zero-sum game the two roles rarely have the same expected return (the first mover in Kuhn Poker
expects -1/18 a hand), so one shared baseline would keep telling one role it is losing. RAE keeps one
baseline per (game, role): an exponential moving average of that role's returns, b <- a*b + (1-a)*R, and
the advantage of every turn the role played in a game is A = R - b, with b read *before* the update.

The baselines are further split by the kind of opponent ("self" in pure self-play; "pool", "random",
"strong" or "frozen" otherwise): a role's expected return against a weak snapshot or a scripted expert is
not its expected return against itself, and one mixed baseline would mis-credit every game of either kind.

Invalid answers. A game that an invalid answer ended says nothing about how well the roles *play*, so it
never moves a baseline: the baseline is the expected return of games played to their end. The offending
role's turns get `penalty - b`, which stays negative however often the role fails (had its forfeits entered
the EMA, a role that started answering invalidly would drag its own baseline towards the penalty and its
advantage towards 0: measured, that let a format collapse run away). The other role did nothing to earn its
win, so its turns get advantage 0.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from spiral_train.rollout.records import GameResult, Turn


@dataclass
class RoleReturn:
    """One role's return in one game; the advantage is filled in by `RAE.assign`."""

    env_id: str
    role: str
    reward: float
    advantage: float = 0.0
    opponent: str = "self"
    """The kind of opponent this role faced: "self" (pure self-play), "pool", "random", "strong", "frozen"."""
    ended_by: str | None = None
    """Who ended the game with an invalid answer: None (played to the end), "self" (this role), "opponent"."""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.env_id, self.role, self.opponent)


class RAE:
    """Baselines per (env id, role, opponent kind). `mode`: "ema" (the paper), "batch" (normalise within each batch per
    game and role, a GRPO-like ablation) or "none" (plain REINFORCE: A = R)."""

    def __init__(self, mode: str = "ema", decay: float = 0.95) -> None:
        self.mode = mode
        self.decay = decay
        self.baselines: dict[tuple[str, str, str], float] = {}

    def assign(self, returns: Sequence[RoleReturn]) -> None:
        """Fill in advantages, in order (games earlier in the batch update the baseline first)."""
        if self.mode not in ("none", "ema", "batch"):
            raise ValueError(f"RAE mode {self.mode!r} is unknown; use 'ema', 'batch' or 'none'")
        if self.mode == "none":
            for r in returns:
                r.advantage = r.reward
        elif self.mode == "ema":
            for r in returns:
                key = r.key
                baseline = self.baselines.get(key, 0.0)
                r.advantage = r.reward - baseline
                # a role has its baseline (0 at first) from its first game; only games played out move it
                played = r.ended_by is None
                self.baselines[key] = self.decay * baseline + (1.0 - self.decay) * r.reward if played else baseline
        else:
            groups: dict[tuple[str, str, str], list[RoleReturn]] = defaultdict(list)
            for r in returns:
                groups[r.key].append(r)
            for key, members in groups.items():
                played = [m.reward for m in members if m.ended_by is None]
                mean = statistics.fmean(played) if played else self.baselines.get(key, 0.0)
                rewards = [m.reward for m in members]
                std = statistics.pstdev(rewards) if len(rewards) > 1 else 0.0
                for m in members:
                    m.advantage = (m.reward - mean) / (std + 1e-6)
                self.baselines[key] = mean
        for r in returns:
            if r.ended_by == "opponent":
                r.advantage = 0.0

    def state_dict(self) -> dict:
        baselines = [[env_id, role, kind, value] for (env_id, role, kind), value in self.baselines.items()]
        return {"mode": self.mode, "decay": self.decay, "baselines": baselines}

    def load_state_dict(self, state: dict) -> None:
        self.baselines = {}
        for entry in state["baselines"]:
            if len(entry) != 4:
                raise ValueError(
                    f"RAE baseline {entry!r} is not [env id, role, opponent kind, value]: the checkpoint was written "
                    "by a development version of spiral-train; start a new run"
                )
            env_id, role, kind, value = entry
            self.baselines[(env_id, role, kind)] = float(value)


def state_baselines(keys: Sequence[object], rewards: Sequence[float], played: Sequence[bool]) -> list[float | None]:
    """A baseline per turn from the other turns of the batch taken at the same state, or None where there are none.

    `keys[i]` names turn i's state (its env, role, opponent kind and exact prompt), `rewards[i]` its role's return
    and `played[i]` whether its game was played to its end. Turn i's baseline is the mean return of the *other*
    played turns with its key (leave-one-out, so a turn never sets its own baseline): where a state recurs, as
    every first-hand state of Kuhn Poker does, the advantages of its answers then sum to about zero, so the
    tokens every answer shares (the format) get no net push, and only what tells answers apart does. A role
    baseline cannot do that: both legal answers of a losing state (a J facing a bet) sit below it, and pushing
    both down leaks probability to invalid answers (measured, docs/learning.md).
    """
    sums: dict[object, float] = defaultdict(float)
    counts: dict[object, int] = defaultdict(int)
    for key, reward, ok in zip(keys, rewards, played):
        if ok:
            sums[key] += reward
            counts[key] += 1
    out: list[float | None] = []
    for key, reward, ok in zip(keys, rewards, played):
        n, total = counts[key] - ok, sums[key] - (reward if ok else 0.0)
        out.append(total / n if n > 0 else None)
    return out


def assign_advantages(results: Sequence[GameResult], rae: RAE, state_baseline: bool = False) -> list[Turn]:
    """Every learner turn of `results`, its advantage filled in: RAE per (game, role, opponent kind), in game
    order, each turn of a role getting that role's advantage; with `state_baseline`, a turn whose exact prompt
    recurs in the batch is measured against the other turns at that prompt (`state_baselines`). Who ended a
    game with an invalid answer is the outcome's `offender` (`GameResult.score`)."""
    role_returns: list[RoleReturn] = []
    owners: list[list[Turn]] = []
    for result in results:
        by_role: dict[str, list[Turn]] = defaultdict(list)
        for turn in result.turns:
            by_role[turn.role].append(turn)
        for role, role_turns in by_role.items():
            score = result.score(role)
            kind = result.match.opponent_kind()
            role_returns.append(
                RoleReturn(result.match.env_id, role, score.value, opponent=kind, ended_by=score.ended_by)
            )
            owners.append(role_turns)
    rae.assign(role_returns)
    turns, owner_of = [], []
    for rr, role_turns in zip(role_returns, owners):
        for turn in role_turns:
            turn.advantage = rr.advantage
            turns.append(turn)
            owner_of.append(rr)
    if state_baseline:
        keys = [(*rr.key, tuple(t.prompt_ids)) for rr, t in zip(owner_of, turns)]
        played = [rr.ended_by is None for rr in owner_of]
        baselines = state_baselines(keys, [rr.reward for rr in owner_of], played)
        for turn, rr, baseline in zip(turns, owner_of, baselines):
            if baseline is not None and rr.ended_by != "opponent":
                turn.advantage = rr.reward - baseline
    return turns
