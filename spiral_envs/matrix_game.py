"""Exact solutions of two-player zero-sum matrix games, by the simplex method in numpy.

The classic reduction: shift the payoffs so every entry is at least 1 (the value becomes positive), then the
column player's optimal strategy, scaled by 1/value, solves the linear program

    maximise 1·u  subject to  A u <= 1,  u >= 0,

and the row player's, scaled the same way, is its dual. A dense tableau with Bland's rule (no cycling on
degenerate games) finds the optimal basis; the final basic solutions are then recomputed from the original
matrix with one linear solve each, so the answer carries no rounding accumulated over the pivots.
"""

from __future__ import annotations

import numpy as np

TOLERANCE = 1e-11
"""Reduced costs and pivot entries smaller than this count as zero (the shifted payoffs are all >= 1)."""


def solve_zero_sum(payoff: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """An equilibrium of the zero-sum game where the row player receives `payoff[i, j]` and maximises it.

    Returns (x, y, value): the row player's and the column player's mixed strategies (non-negative, summing to
    1) and the value of the game, so that min_j (x @ payoff)[j] = value = max_i (payoff @ y)[i] up to rounding
    (about 1e-12 for payoffs of order 1 and matrices up to ~100x100). Raises ValueError for an empty, non-2-D
    or non-finite matrix.
    """
    a = np.asarray(payoff, dtype=float)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"payoff must be a non-empty 2-D matrix, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("payoff has entries that are not finite numbers")
    shift = 1.0 - a.min()
    shifted = a + shift
    basis = _optimal_basis(shifted)
    u, t = _basic_solutions(shifted, basis)
    x, y = t / t.sum(), u / u.sum()
    value = float(x @ a @ y)
    return x, y, value


def _optimal_basis(b: np.ndarray) -> list[int]:
    """The optimal basis of max 1·u s.t. b u <= 1, u >= 0 (b > 0): indices into [u columns, slack columns]."""
    m, n = b.shape
    tableau = np.zeros((m + 1, n + m + 1))
    tableau[:m, :n] = b
    tableau[:m, n : n + m] = np.eye(m)
    tableau[:m, -1] = 1.0
    tableau[m, :n] = -1.0  # objective row: reduced costs of maximising the sum of u
    basis = list(range(n, n + m))  # the slacks: u = 0 is feasible
    for _ in range(50 * (n + m) ** 2):  # Bland's rule terminates; this bound only guards against a bug
        negative = np.flatnonzero(tableau[m, :-1] < -TOLERANCE)
        if negative.size == 0:
            return basis
        entering = int(negative[0])  # Bland: the lowest index that improves the objective
        column = tableau[:m, entering]
        rows = np.flatnonzero(column > TOLERANCE)  # never empty: every u is bounded by b u <= 1, b > 0
        ratios = tableau[rows, -1] / column[rows]
        tied = rows[ratios <= ratios.min() + TOLERANCE]
        leaving = int(min(tied, key=lambda r: basis[r]))  # Bland: the lowest basic index among the ties
        tableau[leaving] /= tableau[leaving, entering]
        others = np.arange(m + 1) != leaving
        tableau[others] -= np.outer(tableau[others, entering], tableau[leaving])
        basis[leaving] = entering
    raise RuntimeError("the simplex method did not terminate; this is a bug")


def _basic_solutions(b: np.ndarray, basis: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Primal u and dual t of the optimal basis, solved afresh from `b` (so pivoting errors do not remain)."""
    m, n = b.shape
    full = np.hstack([b, np.eye(m)])
    basic = full[:, basis]
    costs = np.array([1.0 if j < n else 0.0 for j in basis])
    values = np.linalg.solve(basic, np.ones(m))
    dual = np.linalg.solve(basic.T, costs)
    u = np.zeros(n + m)
    u[basis] = values
    return np.clip(u[:n], 0.0, None), np.clip(dual, 0.0, None)
