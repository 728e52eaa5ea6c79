"""solve_zero_sum: every answer is checked by its certificate, min over columns of x A = max over rows of A y."""

from __future__ import annotations

import numpy as np
import pytest

from spiral_envs.matrix_game import solve_zero_sum

SHAPES = [(1, 1), (1, 6), (6, 1), (2, 2), (3, 7), (7, 3), (20, 20), (27, 64), (64, 27), (64, 64)]


def assert_certified(payoff: np.ndarray, x: np.ndarray, y: np.ndarray, value: float, tol: float = 1e-9) -> None:
    """x guarantees the row player at least `value` against every column, y holds it to at most `value`."""
    for strategy, size in ((x, payoff.shape[0]), (y, payoff.shape[1])):
        assert strategy.shape == (size,)
        assert strategy.min() >= 0 and abs(strategy.sum() - 1) < 1e-12
    assert abs((x @ payoff).min() - value) < tol
    assert abs((payoff @ y).max() - value) < tol


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", range(4))
def test_random_games_are_solved_to_their_certificate(shape, seed):
    rng = np.random.default_rng(seed)
    payoff = rng.normal(size=shape) * 3 + rng.normal()
    assert_certified(payoff, *solve_zero_sum(payoff))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", range(4))
def test_degenerate_games_with_many_ties_are_solved(shape, seed):
    """Small integer payoffs make many equal ratios in the simplex: Bland's rule must not cycle."""
    payoff = np.random.default_rng(100 + seed).integers(-1, 2, size=shape).astype(float)
    assert_certified(payoff, *solve_zero_sum(payoff))


def test_rock_paper_scissors_is_uniform_with_value_zero():
    payoff = np.array([[0, -1, 1], [1, 0, -1], [-1, 1, 0]])
    x, y, value = solve_zero_sum(payoff)
    assert abs(value) < 1e-12
    np.testing.assert_allclose(x, [1 / 3] * 3, atol=1e-12)
    np.testing.assert_allclose(y, [1 / 3] * 3, atol=1e-12)


def test_a_dominated_strategy_gets_no_weight():
    """Matching pennies plus a third row that is worse than the first against every column.

    Without it the value is 0 and both players mix 1/2-1/2; the dominated row changes nothing.
    """
    payoff = np.array([[1.0, -1.0], [-1.0, 1.0], [0.5, -2.0]])
    x, y, value = solve_zero_sum(payoff)
    assert abs(value) < 1e-12
    np.testing.assert_allclose(x, [0.5, 0.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(y, [0.5, 0.5], atol=1e-12)
    assert_certified(payoff, x, y, value)


def test_a_saddle_point_is_found_as_pure_strategies():
    payoff = np.array([[3.0, 1.0, 4.0], [2.0, 0.0, 1.0], [5.0, 2.0, 6.0]])  # row 2, column 1: value 2
    x, y, value = solve_zero_sum(payoff)
    assert value == pytest.approx(2.0, abs=1e-12)
    np.testing.assert_allclose(x, [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(y, [0, 1, 0], atol=1e-12)


def test_a_constant_game_and_bad_input():
    x, y, value = solve_zero_sum(np.full((3, 4), -2.5))
    assert value == pytest.approx(-2.5, abs=1e-12)
    assert_certified(np.full((3, 4), -2.5), x, y, value)
    for bad in (np.zeros((0, 3)), np.zeros(3), np.array([[1.0, np.nan]])):
        with pytest.raises(ValueError):
            solve_zero_sum(bad)
