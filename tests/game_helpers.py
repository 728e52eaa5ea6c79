"""Scripted strategies and exact values that only the tests use: the one-round Nash equilibrium of Kuhn Poker
(Kuhn, 1950) and the exact value of a TicTacToe policy against uniformly random play."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from spiral_envs.games.kuhn_poker import sample_answer
from spiral_envs.games.tictactoe import line_winner

THIRD = Fraction(1, 3)


class KuhnPokerNashAgent:
    """A Nash equilibrium strategy of one round (Kuhn, 1950), by card and by position in the round.

    Every member of the family `alpha` in [0, 1/3] is optimal: the first to act expects -1/18 chips a round
    against any optimal opponent, and no opponent can do better against it. The default alpha = 1/3 always
    bets a K when first to act and bluffs a J a third of the time; alpha = 0 never bets first (it checks
    every card and lets the opponent bet into it). We default to 1/3 because it wins more from weak play: against
    uniformly random moves it expects +1/6 chip a round in either seat, where alpha = 0 gets +1/18 as the first
    to act. Each round is played on its own, as the equilibrium of the one-round game, which never loses in
    expectation but does not exploit an opponent's mistakes as much as it could.
    """

    def __init__(self, seed: int | None = None, alpha: Fraction | int = THIRD) -> None:
        alpha = Fraction(alpha)
        if not 0 <= alpha <= THIRD:
            raise ValueError(f"alpha must lie in [0, 1/3] for a Nash equilibrium, got {alpha}")
        self.alpha = alpha
        self.rng = random.Random(seed)

    def policy(self, view: dict[str, Any]) -> dict[str, Fraction]:
        """Exact probability of each legal action (in the rules' order) for the player whose view this is."""
        card, betting, a = view["card"], view["betting"], self.alpha
        if view["starts"]:
            if not betting:
                bet = {"J": a, "Q": Fraction(0), "K": 3 * a}[card]
                return {"check": 1 - bet, "bet": bet}
            if tuple(betting) == ("check", "bet"):
                call = {"J": Fraction(0), "Q": a + THIRD, "K": Fraction(1)}[card]
                return {"call": call, "fold": 1 - call}
        elif tuple(betting) == ("check",):
            bet = {"J": THIRD, "Q": Fraction(0), "K": Fraction(1)}[card]
            return {"check": 1 - bet, "bet": bet}
        elif tuple(betting) == ("bet",):
            call = {"J": Fraction(0), "Q": THIRD, "K": Fraction(1)}[card]
            return {"call": call, "fold": 1 - call}
        raise ValueError(f"no move is due in this view: betting {betting!r}, starts={view['starts']}")

    def __call__(self, observation: str, info: dict[str, Any]) -> str:
        return sample_answer(self.policy(info["view"]), self.rng)


Board = tuple[int | None, ...]
CellPolicy = Callable[[Board, int], dict[int, float]]
"""A seat's strategy as data: (board, player to move) -> probability of each free cell."""


def uniform_policy(board: Board, player: int) -> dict[int, float]:
    """`RandomAgent`'s play: every free cell equally likely."""
    free = [cell for cell in range(9) if board[cell] is None]
    return {cell: 1 / len(free) for cell in free}


def value_against_random(policy: CellPolicy | None, seat: int) -> float:
    """The exact expected return (+1 win, -1 loss, 0 draw) for `seat` (0: X, 1: O) when it plays `policy`
    and the other seat plays uniformly random legal moves, by enumerating every game. With `policy` None,
    the seat plays a best response to random play instead: the most any strategy can get against it.

    Probability mass a `policy` puts on no free cell (an invalid answer) loses the game, as in the env."""
    memo: dict[Board, float] = {}

    def value(board: Board) -> float:
        if board in memo:
            return memo[board]
        winner = line_winner(board)
        free = [cell for cell in range(9) if board[cell] is None]
        if winner is not None or not free:
            result = 0.0 if winner is None else (1.0 if winner == seat else -1.0)
        else:
            mover = 1 - board.count(None) % 2  # X (0) moves when the count of free cells is odd
            children = {cell: value((*board[:cell], mover, *board[cell + 1 :])) for cell in free}
            if mover != seat:
                result = sum(children.values()) / len(free)
            elif policy is None:
                result = max(children.values())
            else:
                probs = policy(board, mover)
                legal = sum(probs.get(cell, 0.0) for cell in free)
                result = sum(probs.get(cell, 0.0) * v for cell, v in children.items()) - (1.0 - legal)
        memo[board] = result
        return result

    return value((None,) * 9)


def fastest_step(env: Any, answer: str, tries: int = 3) -> float:
    """The fastest of `tries` timings of `env.step(answer)` from `reset(seed=0)`, in seconds (for the tests that
    read hostile answers in linear time)."""
    best = float("inf")
    for _ in range(tries):
        env.reset(seed=0)
        start = time.perf_counter()
        env.step(answer)
        best = min(best, time.perf_counter() - start)
    return best
