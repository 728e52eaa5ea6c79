"""Strategy metrics: what the model's play is worth by the game's own theory, with confidence intervals.

Win rate against a random player cannot tell a good strategy from a bad one (in 5-round Kuhn Poker the
exact equilibrium itself wins about half its games against random). These metrics measure the strategy:

- Kuhn Poker: the model's policy at the 12 information states of the first hand (sampled, invalid answers
  left out and the rest renormalised), taken as its policy in every round; its NashConv in the env's own
  scoring (0 for an equilibrium; what best responses in the two seats gain against it), with a bootstrap
  interval; and a best response to it, which evaluation then plays as the "exploiter" opponent.
- TicTacToe: the share of answers at fixed positions that keep the minimax value (optimal-move rate).
- Every game: the entropy of the move choice per decision point, and the invalid share there.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import spiral_envs
from spiral_envs.games import kuhn_theory
from spiral_train.collector import ModelPolicy
from spiral_train.probes import Probe, kuhn_probes, sample_moves, tictactoe_probes

Z95 = 1.959963984540054
KUHN_STATE_NAMES = {(): "first", ("check",): "after_check", ("bet",): "facing_bet", ("check", "bet"): "check_bet"}
"""Short names of the four betting lines for metric keys: e.g. `policy/J/facing_bet/call`."""


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial rate (95% by default); (0, 1) with no trials."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return (max(0.0, (centre - half) / scale), min(1.0, (centre + half) / scale))


def entropy(counts: dict[str, int]) -> float:
    """Shannon entropy (nats) of the empirical move choice; 0 with no valid move."""
    total = sum(counts.values())
    return -sum(c / total * math.log(c / total) for c in counts.values() if c) if total else 0.0


def tally(probe: Probe, moves: Sequence[str | None]) -> tuple[dict[str, int], int]:
    """Counts of each legal move (every one listed, zeros too) and the number of invalid answers."""
    counts = dict.fromkeys(probe.legal, 0)
    for move in moves:
        if move is not None:
            counts[move] += 1
    return counts, sum(move is None for move in moves)


def round_policy(probes: Sequence[Probe], counts: Sequence[dict[str, int]]) -> dict[tuple, dict[str, float]]:
    """Kuhn Poker (card, betting) -> action -> probability, from move counts; uniform where all were invalid."""
    policy = {}
    for probe, c in zip(probes, counts):
        total = sum(c.values())
        actions = {spiral_envs.normalize_move(text): n for text, n in c.items()}
        policy[probe.key] = {a: (n / total if total else 1 / len(actions)) for a, n in actions.items()}
    return policy


def kuhn_strategy(
    policy: ModelPolicy,
    env_id: str,
    env_kwargs: dict[str, Any],
    samples: int,
    bootstrap: int = 200,
    seed: int = 0,
    on_answers: Callable[[int], None] | None = None,
) -> tuple[dict[str, float], tuple[Callable[..., dict[str, float]], ...]]:
    """Metrics of the model's first-hand policy (keys relative to `eval/<env_id>/`), and a best response to
    it for each seat (a match policy; index 0 plays as player_0) for the exploiter opponent. `on_answers`:
    called with the count of answers sampled after each generation call (progress)."""
    as_match = kuhn_theory.round_policy_as_match_policy
    env = spiral_envs.make(env_id, **env_kwargs)
    num_rounds, scoring = env.game.num_rounds, env.game.scoring
    probes = kuhn_probes(env_id, json.dumps(env_kwargs, sort_keys=True))
    moves = sample_moves(policy, probes, samples, on_answers)
    counts, invalid = zip(*(tally(p, m) for p, m in zip(probes, moves)))
    measured = round_policy(probes, counts)
    conv = kuhn_theory.nash_conv(as_match(measured), num_rounds, scoring)
    rng = random.Random(seed)
    draws = sorted(
        kuhn_theory.nash_conv(as_match(round_policy(probes, _resample(counts, rng))), num_rounds, scoring)
        for _ in range(bootstrap)
    )
    answers = samples * len(probes)
    metrics: dict[str, float] = {
        "strategy/nash_conv": conv,
        "strategy/nash_conv_lo": _quantile(draws, 0.025),
        "strategy/nash_conv_hi": _quantile(draws, 0.975),
        **_invalid_and_entropy(counts, sum(invalid), answers),
    }
    for probe in probes:
        card, line = probe.key
        action = aggressive_action(line)
        metrics[f"policy/{card}/{KUHN_STATE_NAMES[line]}/{action}"] = measured[probe.key][action]
    seat_values = [kuhn_theory.best_response(as_match(measured), num_rounds, scoring, seat) for seat in (0, 1)]
    metrics["strategy/best_response_gain/player_0"] = seat_values[0][0]
    metrics["strategy/best_response_gain/player_1"] = seat_values[1][0]
    return metrics, tuple(br for _, br in seat_values)


def logged_round_policy(record: dict[str, float], env_id: str) -> dict[tuple, dict[str, float]]:
    """The measured first-hand policy back from an evaluation record's `eval/<env_id>/policy/...` keys, as
    `kuhn_theory` takes it (card, betting) -> action -> probability: to judge a run after the fact."""
    policy = {}
    for card, line in kuhn_theory.INFO_STATES:
        legal = kuhn_theory.legal_actions(line)
        aggressive = aggressive_action(line)
        key = f"eval/{env_id}/policy/{card}/{KUHN_STATE_NAMES[line]}/{aggressive}"
        if key not in record:
            raise KeyError(f"{key} is not in the record: was it an evaluation step with eval_probe_samples > 0?")
        p = record[key]
        policy[(card, line)] = {a: (p if a == aggressive else 1.0 - p) for a in legal}
    return policy


def aggressive_action(line: tuple[str, ...]) -> str:
    """The move a policy row is reported by (`policy/<card>/<line>/<move>`): call facing a bet, else bet."""
    return "call" if line and line[-1] == "bet" else "bet"


def tictactoe_strategy(
    policy: ModelPolicy,
    env_id: str,
    env_kwargs: dict[str, Any],
    samples: int,
    positions: int = 120,
    on_answers: Callable[[int], None] | None = None,
) -> dict[str, float]:
    """Optimal-move rate (answers that keep the minimax value, invalid ones counted as not optimal) at
    `positions` fixed positions reached by random play, with its Wilson interval over all answers."""
    probes = tictactoe_probes(env_id, json.dumps(env_kwargs, sort_keys=True), positions)
    moves = sample_moves(policy, probes, samples, on_answers)
    counts, invalid = zip(*(tally(p, m) for p, m in zip(probes, moves)))
    optimal = sum(sum(c[move] for move in p.optimal) for p, c in zip(probes, counts))
    answers = samples * len(probes)
    lo, hi = wilson(optimal, answers)
    random_rate = sum(len(p.optimal) / len(p.legal) for p in probes) / len(probes)
    return {
        "strategy/optimal_move_rate": optimal / answers,
        "strategy/optimal_move_rate_lo": lo,
        "strategy/optimal_move_rate_hi": hi,
        "strategy/optimal_move_rate_random": random_rate,
        **_invalid_and_entropy(counts, sum(invalid), answers),
    }


def _invalid_and_entropy(counts: Sequence[dict[str, int]], invalid: int, answers: int) -> dict[str, float]:
    lo, hi = wilson(invalid, answers)
    return {
        "strategy/invalid_rate": invalid / answers,
        "strategy/invalid_rate_lo": lo,
        "strategy/invalid_rate_hi": hi,
        "strategy/entropy": sum(entropy(c) for c in counts) / len(counts),
    }


def _resample(counts: Sequence[dict[str, int]], rng: random.Random) -> list[dict[str, int]]:
    """One bootstrap draw: each state's valid answers drawn again with replacement from its own."""
    out = []
    for c in counts:
        total = sum(c.values())
        moves = [m for m, n in c.items() for _ in range(n)]
        draw = dict.fromkeys(c, 0)
        for _ in range(total):
            draw[rng.choice(moves)] += 1
        out.append(draw)
    return out


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]
