"""`spiral_envs.stats`: the Wilson interval every reported rate uses, at its edges (0 of n, n of n)."""

from __future__ import annotations

import pytest

from spiral_envs.stats import rate, wilson


def test_wilson_at_0_of_80_has_the_textbook_upper_end():
    lo, hi = wilson(0, 80)
    assert lo == 0.0
    assert hi == pytest.approx(0.0458, abs=5e-5)  # z^2 / (n + z^2) = 3.8415 / 83.8415


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 24, 80, 320, 999, 4096])
@pytest.mark.parametrize("all_or_none", ["none", "all"])
def test_every_rate_at_0_and_at_n_has_positive_width_and_holds_its_value(n, all_or_none):
    successes = 0 if all_or_none == "none" else n
    metrics = rate("win_rate", successes, n)
    lo, value, hi = metrics["win_rate_lo"], metrics["win_rate"], metrics["win_rate_hi"]
    assert 0.0 <= lo <= value <= hi <= 1.0
    assert hi - lo > 0.0
    assert (lo, hi) == wilson(successes, n)


def test_wilson_holds_the_rate_at_every_count():
    for n in range(1, 400):
        for successes in range(n + 1):
            lo, hi = wilson(successes, n)
            assert 0.0 <= lo <= successes / n <= hi <= 1.0 and hi > lo, (successes, n)
