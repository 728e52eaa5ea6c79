"""TicTacToe's registered theory: the optimal-move rate at fixed positions, by exhaustive minimax.

The probes are distinct non-terminal positions reached by uniformly random play from seeded games; an answer is
optimal when it keeps the minimax value of its position for the player to move (an invalid one never is).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from spiral_envs.agents import boxed
from spiral_envs.games.tictactoe import optimal_moves
from spiral_envs.stats import invalid_and_entropy
from spiral_envs.theory import Answer, GameTheory, Measurement, Probe

SAMPLES_DIVISOR = 8
"""A position gets `samples // 8` answers (at least 1): many positions, few answers each."""


class TicTacToeTheory(GameTheory):
    """`strategy/optimal_move_rate` (with its Wilson interval over all answers, and
    `strategy/optimal_move_rate_random`, uniform play's expected rate at the same positions),
    `strategy/invalid_rate` (with its Wilson interval) and `strategy/entropy`, at `positions` positions."""

    def probe_count(self, positions: int) -> int:
        return positions

    def samples_per_probe(self, samples: int) -> int:
        return samples // SAMPLES_DIVISOR or 1

    def build_probes(self, positions: int, seed: int = 0) -> list[Probe]:
        """`positions` distinct positions, in the order random play from `seed`'s games first reaches them."""
        env = self.env
        rng = random.Random(seed)
        seen: set[tuple] = set()
        probes = []
        while len(probes) < positions:
            env.reset(seed=rng.randrange(2**31))
            depth = rng.randrange(0, 8)
            for _ in range(depth):
                legal = env.infos[env.agent_selection]["legal_actions"]
                env.step(boxed(rng.choice(legal)))
                if not env.agents or env.terminations[env.agent_selection]:
                    break
            if not env.agents or env.terminations[env.agent_selection]:
                continue
            view = env.infos[env.agent_selection]["view"]
            key = (tuple(view["board"]), view["player"])
            if key in seen:
                continue
            seen.add(key)
            best = frozenset(f"[{cell}]" for cell in optimal_moves(view["board"], view["player"]))
            probes.append(self.probe_here(key, best))
        return probes

    def measure(self, probes: Sequence[Probe], answers: Sequence[Sequence[Answer]], seed: int = 0) -> Measurement:
        counts, invalid = zip(*(self.tally(p, a) for p, a in zip(probes, answers)))
        total = sum(len(a) for a in answers)
        return Measurement(
            {
                **self.optimal_rate("strategy/optimal_move_rate", probes, counts, total),
                "strategy/optimal_move_rate_random": sum(len(p.optimal) / len(p.legal) for p in probes) / len(probes),
                **invalid_and_entropy(counts, sum(invalid), total),
            }
        )
