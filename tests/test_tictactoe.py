"""TicTacToe minimax_value and optimal_moves, against a separate plain brute force written here."""

from __future__ import annotations

import functools
import random

import pytest

from spiral_envs.games.tictactoe import TicTacToeState, minimax_value, optimal_moves

WINS = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6)]


@functools.cache
def brute_value(board: tuple, player: int) -> int:
    """+1 / 0 / -1 for `player` to move, by trying every continuation (no move-count tie-break)."""
    for a, b, c in WINS:
        if board[a] is not None and board[a] == board[b] == board[c]:
            return 1 if board[a] == player else -1
    free = [i for i, cell in enumerate(board) if cell is None]
    if not free:
        return 0
    return max(-brute_value((*board[:i], player, *board[i + 1 :]), 1 - player) for i in free)


def brute_moves(board: tuple, player: int) -> list[int]:
    value = brute_value(board, player)
    free = [i for i, cell in enumerate(board) if cell is None]
    return [i for i in free if -brute_value((*board[:i], player, *board[i + 1 :]), 1 - player) == value]


def test_the_empty_board_is_a_draw_and_every_first_move_keeps_it():
    empty = (None,) * 9
    assert brute_value(empty, 0) == 0 == minimax_value(empty, 0)
    assert optimal_moves(empty, 0) == list(range(9)) == brute_moves(empty, 0)


def test_an_immediate_win_is_optimal_and_losing_moves_are_not():
    # X: 0, 1; O: 3, 4; X to move. Cell 2 wins at once; the brute force finds no other move that still wins.
    board = (0, 0, None, 1, 1, None, None, None, None)
    assert minimax_value(board, 0) == 1
    assert optimal_moves(board, 0) == brute_moves(board, 0) == [2]


def test_a_forced_win_can_be_kept_by_more_than_the_immediate_win():
    """Only the sign counts: with O to move here, 5 wins at once and 2 makes a double threat, both a win."""
    board = (0, 0, None, 1, 1, None, None, None, None)
    assert optimal_moves(board, 1) == brute_moves(board, 1) == [2, 5]


def test_positions_from_random_play_match_the_brute_force():
    rng = random.Random(0)
    checked = 0
    for _ in range(200):
        state = TicTacToeState()
        while not state.is_terminal():
            board, player = state.board, state.current_player()
            assert minimax_value(board, player) == brute_value(board, player)
            assert optimal_moves(board, player) == brute_moves(board, player)
            checked += 1
            state.apply_action(rng.choice(state.legal_actions()))
        assert optimal_moves(state.board, 0) == optimal_moves(state.board, 1) == []  # a line, or no free cell
    assert checked > 1000


@pytest.mark.parametrize("player", [0, 1])
def test_a_finished_board_has_no_optimal_move(player):
    board = (0, 0, 0, 1, 1, None, None, None, None)
    assert optimal_moves(board, player) == []
    assert minimax_value(board, player) == (1 if player == 0 else -1)
