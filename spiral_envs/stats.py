"""The statistics of the strategy metrics: a binomial rate's interval, a move choice's entropy, a bootstrap.

Plain arithmetic on counts, shared by every game's theory (`spiral_envs.theory`) and by evaluation's rates.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

Z95 = 1.959963984540054


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial rate (95% by default); (0, 1) with no trials.

    The interval always holds the rate `successes / n` and has positive width for n >= 1: at 0 of n it is
    (0, z^2 / (n + z^2)) (0 of 80: (0, 0.0458)), at n of n (n / (n + z^2), 1). The bounds are clamped to hold the
    rate, because rounding can leave the upper end at n of n a hair below 1."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(max(0.0, p * (1 - p)) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return (max(0.0, min(p, (centre - half) / scale)), min(1.0, max(p, (centre + half) / scale)))


def rate(name: str, successes: float, n: int) -> dict[str, float]:
    """`name`: the rate `successes / n` (0 with no trials), with its Wilson interval as `<name>_lo`, `<name>_hi`."""
    lo, hi = wilson(successes, n)
    return {name: successes / n if n > 0 else 0.0, f"{name}_lo": lo, f"{name}_hi": hi}


def entropy(counts: dict[str, int]) -> float:
    """Shannon entropy (nats) of the empirical move choice; 0 with no valid move."""
    total = sum(counts.values())
    return -sum(c / total * math.log(c / total) for c in counts.values() if c) if total else 0.0


def invalid_and_entropy(counts: Sequence[dict[str, int]], invalid: int, answers: int) -> dict[str, float]:
    """`strategy/invalid_rate` (with its Wilson interval) over all `answers`, and `strategy/entropy`, the mean
    over decision points of the entropy of the valid answers' move choice."""
    return {
        **rate("strategy/invalid_rate", invalid, answers),
        "strategy/entropy": sum(entropy(c) for c in counts) / len(counts),
    }


def resample(counts: Sequence[dict[str, int]], rng: random.Random) -> list[dict[str, int]]:
    """One bootstrap draw: each decision point's valid answers drawn again with replacement from its own."""
    out = []
    for c in counts:
        total = sum(c.values())
        moves = [m for m, n in c.items() for _ in range(n)]
        draw = dict.fromkeys(c, 0)
        for _ in range(total):
            draw[rng.choice(moves)] += 1
        out.append(draw)
    return out


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """The `q` quantile of sorted values, by the nearest rank; NaN for none."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]
