"""A game's theory, registered with the game as its expert is: where to probe a model, and what its answers there
are worth.

Win rates against fixed opponents cannot tell a good strategy from a bad one; a game's own theory can. A theory
names fixed decision points (probes, each reached by playing the real env from a seed), and turns a model's
sampled answers there into metrics: NashConv for Kuhn Poker, the optimal-move rate for TicTacToe. It may also
build an exploiter: a best response to the policy it measured, played by evaluation as an opponent.

The contract, as evaluation (`spiral_train.eval.games`) uses it:

1. `spiral_envs.spec(env_id).load_theory()` is the game's `GameTheory` subclass (registered with
   `register(..., theory=...)`, or named `theory` on the class an entry point names), or None.
2. `theory = Theory(env_id, env_kwargs)`: the theory of the env `make(env_id, **env_kwargs)` builds.
3. `theory.probe_answers(samples, positions)`: how many answers it asks for, before anything is sampled.
4. `theory.probes(positions)`: the probes; the model is sampled `theory.samples_at(probe, samples)` times at
   each `probe.observation` (the prompt as the env shows it): `samples_per_probe(samples)` everywhere, unless
   the theory spends its answers unevenly (Kuhn Poker: fewer where the game rarely goes).
5. `theory.measure(probes, answers, seed)`: `answers[i]` are the `Answer`s at `probes[i]`, as text (a theory
   never sees a model). It returns a `Measurement`: metrics keyed relative to `eval/<env>/` (e.g.
   `strategy/nash_conv`), and, where `has_exploiter`, an exploiter.

An answer is valid exactly when the env would play it (`spiral_envs.parsing.read_move` at the probe's state)
and it was not cut off at the token limit.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from spiral_envs.core import GameState, InvalidMove
from spiral_envs.parsing import read_move
from spiral_envs.registry import make
from spiral_envs.stats import rate

ExploiterFactory = Callable[[int, str], Any]
"""`(seed, role) -> agent`: an exploiter seat of one game, playing `role` ("player_0" or "player_1"). Plain data
(a module-level function or a `functools.partial` of one over plain values), so it crosses to Ray workers."""


@dataclass(frozen=True)
class Probe:
    """One decision point: the prompt the mover sees, its legal moves, and the game's facts about it."""

    observation: str
    legal: tuple[str, ...]
    """Legal moves as the env writes them, e.g. ("[check]", "[bet]")."""
    key: Hashable
    """What the theory calls this point, e.g. Kuhn Poker's (card, betting), TicTacToe's (board, player)."""
    state: GameState = field(compare=False, repr=False)
    """A copy of the env's state there: answers are read at it, as the env would read them."""
    optimal: frozenset[str] = frozenset()
    """The legal moves the theory counts as best here (TicTacToe: those that keep the minimax value)."""


@dataclass(frozen=True)
class Answer:
    """One sampled answer at a probe, as text."""

    text: str
    cut_off: bool = False
    """Cut off at the token limit by a sampler that counts that as no move (as in play): invalid."""


@dataclass(frozen=True)
class Measurement:
    """What a theory makes of the answers: metrics (keys relative to `eval/<env>/`), and an exploiter or None."""

    metrics: dict[str, float]
    exploiter: ExploiterFactory | None = None


class GameTheory(ABC):
    """A game's probes and what a model's answers there are worth; subclass it and register the subclass.

    Built for one env's options, it builds that env once (`env`) and its probes once per `positions`.
    """

    has_exploiter: ClassVar[bool] = False
    """Whether `measure` returns an exploiter (evaluation plays the "exploiter" opponent only then)."""

    def __init__(self, env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> None:
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self._env: Any = None
        self._probes: dict[int, tuple[Probe, ...]] = {}

    @property
    def env(self) -> Any:
        """The env the probes are played in: `spiral_envs.make(env_id, **env_kwargs)`, built on first use."""
        if self._env is None:
            self._env = make(self.env_id, **self.env_kwargs)
        return self._env

    @abstractmethod
    def probe_count(self, positions: int) -> int:
        """How many probes `probes(positions)` returns (`positions` is for a game that samples positions)."""

    def samples_per_probe(self, samples: int) -> int:
        """Answers sampled at each probe when evaluation asks for `samples` per decision point."""
        return samples

    def samples_at(self, probe: Probe, samples: int) -> int:
        """Answers sampled at `probe` when evaluation asks for `samples` per decision point.

        `samples_per_probe(samples)` by default; a theory that overrides it overrides `probe_answers` to match.
        """
        return self.samples_per_probe(samples)

    def probe_answers(self, samples: int, positions: int) -> int:
        """Answers a measurement samples in all, `samples_at` summed over the probes; known before any probe is
        built."""
        return self.probe_count(positions) * self.samples_per_probe(samples)

    def probes(self, positions: int = 0) -> tuple[Probe, ...]:
        """The probes, built once per `positions` by `build_probes`."""
        if positions not in self._probes:
            self._probes[positions] = tuple(self.build_probes(positions))
        return self._probes[positions]

    @abstractmethod
    def build_probes(self, positions: int) -> Sequence[Probe]:
        """The decision points, each reached by playing `env` from a seed (`probe_here` records one)."""

    @abstractmethod
    def measure(self, probes: Sequence[Probe], answers: Sequence[Sequence[Answer]], seed: int = 0) -> Measurement:
        """Metrics of the answers at each probe (`answers[i]` at `probes[i]`); `seed` fixes any resampling."""

    def probe_here(self, key: Hashable, optimal: frozenset[str] = frozenset()) -> Probe:
        """A probe at `env`'s current position: the mover's prompt, legal moves and a copy of the state."""
        env = self.env
        agent = env.agent_selection
        legal = tuple(env.infos[agent]["legal_actions"])
        return Probe(str(env.observe(agent)), legal, key, copy.deepcopy(env.state), optimal)

    def read(self, probe: Probe, answer: Answer) -> str | None:
        """The legal move text `answer` plays at `probe` (as `probe.legal` lists it), or None: invalid."""
        if answer.cut_off:
            return None
        try:
            return read_move(self.env.game, probe.state, answer.text)[1]
        except InvalidMove:
            return None

    @staticmethod
    def optimal_rate(
        name: str, probes: Sequence[Probe], counts: Sequence[dict[str, int]], answers: int
    ) -> dict[str, float]:
        """`name`: the share of all `answers` that played one of their probe's `optimal` moves (`counts[i]` from
        `tally` at `probes[i]`), with its Wilson interval (`stats.rate`)."""
        hits = sum(sum(c[move] for move in p.optimal) for p, c in zip(probes, counts))
        return rate(name, hits, answers)

    def tally(self, probe: Probe, answers: Sequence[Answer]) -> tuple[dict[str, int], int]:
        """Counts of each legal move (every one listed, zeros too) and the number of invalid answers."""
        counts = dict.fromkeys(probe.legal, 0)
        invalid = 0
        for answer in answers:
            move = self.read(probe, answer)
            if move is None:
                invalid += 1
            else:
                counts[move] += 1
        return counts, invalid
