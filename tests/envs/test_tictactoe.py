"""TicTacToe minimax_value, optimal_moves and value_against_random, against plain brute forces written here."""

from __future__ import annotations

import functools
import random

import pytest
from game_helpers import uniform_policy, value_against_random

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


def _winner(board: tuple) -> int | None:
    for a, b, c in WINS:
        if board[a] is not None and board[a] == board[b] == board[c]:
            return board[a]
    return None


@functools.cache
def brute_best_reply(board: tuple, seat: int) -> float:
    """Expectimax for `seat` against uniformly random play: max over own moves, mean over the other's."""
    winner = _winner(board)
    free = [i for i, cell in enumerate(board) if cell is None]
    if winner is not None or not free:
        return 0.0 if winner is None else (1.0 if winner == seat else -1.0)
    mover = 0 if len(free) % 2 == 1 else 1
    children = [brute_best_reply((*board[:i], mover, *board[i + 1 :]), seat) for i in free]
    return max(children) if mover == seat else sum(children) / len(children)


def test_random_against_random_matches_sampled_games():
    rng = random.Random(0)
    total, games = 0, 20_000
    for _ in range(games):
        state = TicTacToeState()
        while not state.is_terminal():
            state.apply_action(rng.choice(state.legal_actions()))
        winner = _winner(state.board)
        total += 0 if winner is None else (1 if winner == 0 else -1)
    exact = value_against_random(uniform_policy, 0)
    assert exact == pytest.approx(total / games, abs=0.03)  # 0.03 is about 4.5 standard errors
    assert exact == pytest.approx(0.2968, abs=1e-4)  # X wins 58.5%, O 28.8% (the known random-play rates)
    assert value_against_random(uniform_policy, 1) == pytest.approx(-exact, abs=1e-12)


@pytest.mark.parametrize("seat", [0, 1])
def test_the_best_reply_to_random_is_the_brute_force_and_beats_every_policy(seat):
    best = value_against_random(None, seat)
    assert best == pytest.approx(brute_best_reply((None,) * 9, seat), abs=1e-12)
    assert best == pytest.approx((0.9948, 0.9249)[seat], abs=1e-4)

    def minimax(board, player):
        cells = optimal_moves(board, player)
        return {cell: 1 / len(cells) for cell in cells}

    assert value_against_random(uniform_policy, seat) < value_against_random(minimax, seat) < best
    rng = random.Random(seat)
    for _ in range(20):
        table: dict = {}

        def fixed(board, player, table=table):  # a random deterministic strategy
            free = [i for i, cell in enumerate(board) if cell is None]
            return {table.setdefault(board, rng.choice(free)): 1.0}

        assert value_against_random(fixed, seat) <= best + 1e-12


@pytest.mark.parametrize("seat", [0, 1])
def test_probability_on_no_free_cell_loses_the_game(seat):
    assert value_against_random(lambda board, player: {}, seat) == -1.0
    half = value_against_random(
        lambda board, player: {c: 0.5 / len(uniform_policy(board, player)) for c in uniform_policy(board, player)}, seat
    )
    # half the mass invalid at every own move: lost at once half the time, else a game on half-invalid terms
    assert -1.0 < half < value_against_random(uniform_policy, seat) - 0.3
