"""Kuhn Poker's registered theory: the model's first-hand policy, its NashConv in the env's scoring, an exploiter.

The probes are the 12 information states of the first hand (`kuhn_theory.INFO_STATES`). The answers there
(invalid ones left out, the rest renormalised) give the model's policy at each state, taken as its policy in
every round; its NashConv in the env's own `num_rounds` and `scoring` (0 for an equilibrium; what best responses
in the two seats gain against it) comes with a bootstrap interval, and the best responses to it are the
exploiter evaluation plays.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence

from spiral_envs.agents import boxed
from spiral_envs.core import PLAYER_NAMES, normalize_move
from spiral_envs.games import kuhn_theory
from spiral_envs.games.kuhn_poker import KuhnPokerPolicyAgent, MatchPolicy
from spiral_envs.stats import invalid_and_entropy, quantile, resample
from spiral_envs.theory import Answer, GameTheory, Measurement, Probe

KUHN_STATE_NAMES = {(): "first", ("check",): "after_check", ("bet",): "facing_bet", ("check", "bet"): "check_bet"}
"""Short names of the four betting lines for metric keys: e.g. `policy/J/facing_bet/call`."""
MAX_SEEDS = 10_000


def aggressive_action(line: tuple[str, ...]) -> str:
    """The move a policy row is reported by (`policy/<card>/<line>/<move>`): call facing a bet, else bet."""
    return "call" if line and line[-1] == "bet" else "bet"


def round_policy(probes: Sequence[Probe], counts: Sequence[dict[str, int]]) -> dict[tuple, dict[str, float]]:
    """(card, betting) -> action -> probability, from move counts at the probes; uniform where all were invalid."""
    policy = {}
    for probe, c in zip(probes, counts):
        total = sum(c.values())
        actions = {normalize_move(text): n for text, n in c.items()}
        policy[probe.key] = {a: (n / total if total else 1 / len(actions)) for a, n in actions.items()}
    return policy


class KuhnPokerTheory(GameTheory):
    """`strategy/nash_conv` (with `_lo`/`_hi`, a `bootstrap`-draw 95% interval),
    `strategy/best_response_gain/<seat>`, `strategy/invalid_rate` (with its Wilson interval), `strategy/entropy`,
    and `policy/<card>/<line>/<move>` for each state; the exploiter plays the best response for its seat."""

    has_exploiter = True
    bootstrap: int = 200
    """Bootstrap draws of the NashConv interval."""

    def probe_count(self, positions: int) -> int:
        return len(kuhn_theory.INFO_STATES)

    def build_probes(self, positions: int) -> list[Probe]:
        """Each state reached by playing the real env from the first seed that deals the card to the player to
        act, then the betting line."""
        env = self.env
        probes = []
        for card, line in kuhn_theory.INFO_STATES:
            for seed in range(MAX_SEEDS):
                env.reset(seed=seed)
                for move in line:
                    env.step(boxed(f"[{move}]"))
                if env.infos[env.agent_selection]["view"]["card"] == card:
                    break
            else:  # pragma: no cover - a deal of three cards finds every card within a few seeds
                raise RuntimeError(f"no seed deals {card} to the player to act after {line} in {self.env_id}")
            probes.append(self.probe_here((card, line)))
        return probes

    def measure(self, probes: Sequence[Probe], answers: Sequence[Sequence[Answer]], seed: int = 0) -> Measurement:
        as_match = kuhn_theory.round_policy_as_match_policy
        num_rounds, scoring = self.env.game.num_rounds, self.env.game.scoring
        counts, invalid = zip(*(self.tally(p, a) for p, a in zip(probes, answers)))
        measured = round_policy(probes, counts)
        conv = kuhn_theory.nash_conv(as_match(measured), num_rounds, scoring)
        rng = random.Random(seed)
        draws = sorted(
            kuhn_theory.nash_conv(as_match(round_policy(probes, resample(counts, rng))), num_rounds, scoring)
            for _ in range(self.bootstrap)
        )
        metrics: dict[str, float] = {
            "strategy/nash_conv": conv,
            "strategy/nash_conv_lo": quantile(draws, 0.025),
            "strategy/nash_conv_hi": quantile(draws, 0.975),
            **invalid_and_entropy(counts, sum(invalid), sum(len(a) for a in answers)),
        }
        for probe in probes:
            card, line = probe.key
            action = aggressive_action(line)
            metrics[f"policy/{card}/{KUHN_STATE_NAMES[line]}/{action}"] = measured[probe.key][action]
        seat_values = [kuhn_theory.best_response(as_match(measured), num_rounds, scoring, seat) for seat in (0, 1)]
        metrics["strategy/best_response_gain/player_0"] = seat_values[0][0]
        metrics["strategy/best_response_gain/player_1"] = seat_values[1][0]
        return Measurement(metrics, functools.partial(exploiter_agent, tuple(br for _, br in seat_values)))


def exploiter_agent(policies: tuple[MatchPolicy, MatchPolicy], seed: int, role: str) -> KuhnPokerPolicyAgent:
    """The exploiter seat: `policies[seat]`, the best response for that seat, seeded per game."""
    return KuhnPokerPolicyAgent(policies[PLAYER_NAMES.index(role)], seed=seed)
