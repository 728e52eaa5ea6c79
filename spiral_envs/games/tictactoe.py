"""TicTacToe-v0: 3x3 noughts and crosses, as in the SPIRAL paper.

player_0 is X and moves first; cells are numbered 0-8 row by row; a move is written `[4]`. The paper shows
the rules and the current board only (no move history), which is this game's default.
"""

from __future__ import annotations

import functools
import random
from typing import Any

from spiral_envs.core import TERMINAL, GameState, InvalidMove, TextGame, zero_sum_returns

LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))
SYMBOLS = ("X", "O")


@functools.cache
def line_winner(board: tuple[int | None, ...]) -> int | None:
    """The player who owns a full line, if any; cached, as there are only 3**9 boards."""
    for a, b, c in LINES:
        if board[a] is not None and board[a] == board[b] == board[c]:
            return board[a]
    return None


@functools.cache
def free_cells(board: tuple[int | None, ...]) -> tuple[int, ...]:
    """The empty cells of a board, in order; cached, as there are only 3**9 boards."""
    return tuple(i for i, cell in enumerate(board) if cell is None)


class TicTacToeState(GameState[int]):
    """Board as a 9-tuple of None (empty), 0 (X) or 1 (O); actions are cell indices."""

    def __init__(self) -> None:
        self.board: tuple[int | None, ...] = (None,) * 9
        self.moves: list[tuple[int, int]] = []
        self._player = 0
        self.winner: int | None = None

    def current_player(self) -> int:
        return self._player

    def legal_actions(self) -> tuple[int, ...]:
        if self._player == TERMINAL:
            return ()
        return free_cells(self.board)

    def apply_action(self, action: int) -> None:
        if self._player == TERMINAL:
            raise InvalidMove("the game is over")
        if action not in range(9) or self.board[action] is not None:
            raise InvalidMove(f"cell {action} is not free")
        player = self._player
        board = list(self.board)
        board[action] = player
        self.board = tuple(board)
        self.moves.append((player, action))
        self.winner = line_winner(self.board)
        if self.winner is not None or None not in self.board:
            self._player = TERMINAL
        else:
            self._player = 1 - player

    def returns(self) -> tuple[float, float]:
        return zero_sum_returns(self.winner)

    def player_view(self, player: int) -> dict[str, Any]:
        return {"player": player, "board": self.board, "moves": list(self.moves)}


@functools.cache
def board_text(board: tuple[int | None, ...]) -> str:
    """Rows of the board with empty cells showing their number, as the model must write them."""
    cells = [SYMBOLS[c] if c is not None else str(i) for i, c in enumerate(board)]
    rows = [" " + " | ".join(cells[r : r + 3]) for r in (0, 3, 6)]
    return "\n---+---+---\n".join(rows)


CELL_TEXT = tuple(f"[{cell}]" for cell in range(9))


@functools.cache
def _cell_texts(cells: tuple[int, ...]) -> tuple[str, ...]:
    return tuple(CELL_TEXT[cell] for cell in cells)


class TicTacToe(TextGame[int]):
    default_history = "current"
    chance = False

    def new_state(self, rng: random.Random) -> TicTacToeState:
        return TicTacToeState()

    def rules(self, player: int) -> str:
        return (
            f"You are Player {player} in Tic Tac Toe. Your symbol is '{SYMBOLS[player]}'; your opponent plays "
            f"'{SYMBOLS[1 - player]}'. X moves first.\n"
            "Take turns placing your symbol in an empty cell. The first to get three in a row (across, down or "
            "diagonally) wins; a full board without a line is a draw.\n"
            "Cells are numbered 0-8, left to right and top to bottom. Write your move as the cell number in "
            "square brackets, e.g. [4]."
        )

    def describe(self, state: TicTacToeState, player: int, full_history: bool) -> str:
        text = f"Current board:\n{board_text(state.board)}"
        if full_history and state.moves:
            played = "; ".join(f"Player {p} ({SYMBOLS[p]}) took cell {cell}" for p, cell in state.moves)
            text = f"Moves so far: {played}.\n{text}"
        return text

    def format_action(self, action: int) -> str:
        return CELL_TEXT[action] if type(action) is int and 0 <= action < 9 else f"[{action}]"

    def format_legal_actions(self, state: TicTacToeState) -> tuple[str, ...]:
        return _cell_texts(state.legal_actions())

    def outcome_text(self, state: TicTacToeState) -> str:
        if state.winner is None:
            return "the board is full with no line: a draw"
        return f"player_{state.winner} ({SYMBOLS[state.winner]}) completed a line"

    def render(self, state: TicTacToeState) -> str:
        return board_text(state.board)


class TicTacToeMinimaxAgent:
    """Perfect play by exhaustive minimax; among equally good moves, a seeded random one.

    It prefers a faster win and a slower loss, so it also punishes a weak opponent quickly.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)

    def __call__(self, observation: str, info: dict[str, Any]) -> str:
        view = info["view"]
        board, player = view["board"], view["player"]
        values = {cell: -_negamax(_place(board, cell, player), 1 - player) for cell in _free(board)}
        best = max(values.values())
        cell = self.rng.choice([c for c, v in values.items() if v == best])
        return f"\\boxed{{[{cell}]}}"


def _free(board: tuple[int | None, ...]) -> list[int]:
    return [i for i, c in enumerate(board) if c is None]


def _place(board: tuple[int | None, ...], cell: int, player: int) -> tuple[int | None, ...]:
    return (*board[:cell], player, *board[cell + 1 :])


@functools.cache
def _negamax(board: tuple[int | None, ...], player: int) -> int:
    """Value for `player` to move: +(10 - moves played) for a win, the negation for a loss, 0 for a draw."""
    winner = line_winner(board)
    filled = 9 - board.count(None)
    if winner is not None:
        return (10 - filled) if winner == player else -(10 - filled)
    if filled == 9:
        return 0
    return max(-_negamax(_place(board, cell, player), 1 - player) for cell in _free(board))


def minimax_value(board: tuple[int | None, ...], player: int) -> int:
    """The game-theoretic value for `player` to move on `board`: 1 a forced win, 0 a draw, -1 a forced loss.

    On a finished board it is the result for `player` (1 if `player` owns a line, -1 if the other does, 0 if
    the board is full without one).
    """
    value = _negamax(tuple(board), player)
    return (value > 0) - (value < 0)


def optimal_moves(board: tuple[int | None, ...], player: int) -> list[int]:
    """The free cells, in order, that keep `player`'s minimax value (win, draw or loss, however slowly).

    Empty on a finished board. Every cell keeps a lost game lost, so then all free cells are listed.
    """
    board = tuple(board)
    if line_winner(board) is not None:
        return []
    value = minimax_value(board, player)
    return [cell for cell in _free(board) if -minimax_value(_place(board, cell, player), 1 - player) == value]
