"""The two layers every game is made of: pure rules, and the text a language model reads and writes.

Rules (`GameState`) know nothing about prose, so they can be enumerated, tested exhaustively and reused by
scripted agents. The text layer (`TextGame`) turns a state into the prompt a role sees and turns the move
written in an answer back into a rules action. The PettingZoo adapter (`spiral_envs.env.TextGameEnv`) joins
the two and owns everything that is about the protocol: turn order, invalid answers, rewards, seeding.
"""

from __future__ import annotations

import random
import re
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from typing import Any, Generic, TypeVar

A = TypeVar("A", bound=Hashable)

TERMINAL = -1
"""`GameState.current_player()` once the game is over."""


class InvalidMove(ValueError):
    """The answer held no move, or a move the rules forbid here; the message says which and why."""


class GameState(ABC, Generic[A]):
    """A two-player zero-sum game as a state machine, in the style of OpenSpiel's python games.

    Chance events (a deal of cards) draw from the `random.Random` handed to the state by its `TextGame`,
    so one seed fixes the whole game and two games never share a stream.
    """

    @abstractmethod
    def current_player(self) -> int:
        """Index of the player to move, or `TERMINAL`."""

    @abstractmethod
    def legal_actions(self) -> Sequence[A]:
        """The current player's legal actions, in a fixed order (an agent's seeded choice depends on it)."""

    @abstractmethod
    def apply_action(self, action: A) -> None:
        """Play a legal action for the current player; an illegal one raises `InvalidMove`."""

    def is_terminal(self) -> bool:
        return self.current_player() == TERMINAL

    @abstractmethod
    def returns(self) -> tuple[float, float]:
        """Zero-sum outcome of a finished game: (+1, -1), (-1, +1) or (0, 0) for a win, loss or draw; a game
        may score in its own units instead, still zero-sum (Kuhn Poker with `scoring="chips"`: the net chips),
        and then declares its lowest as `TextGame.worst_legal_return`."""

    @abstractmethod
    def player_view(self, player: int) -> dict[str, Any]:
        """Everything `player` may know, and nothing it may not (no opponent card before a showdown).

        Scripted agents play from this; the text layer renders it.
        """

    def score(self) -> dict[str, Any]:
        """The game's own account of a game as data (chips, inventory values), for `infos`; no prose."""
        return {}


class TextGame(ABC, Generic[A]):
    """A game's text layer: the rules text, observations, and the move grammar.

    Subclass it with a `GameState` to add a game; `TextGameEnv` does the rest. `default_history` is the
    observation mode the SPIRAL paper uses for the game: "full" (every past move) or "current" (the rules and
    the current position only).
    """

    default_history: str = "full"
    chance: bool = True
    """Whether `new_state`'s games draw from their `rng` (OpenSpiel's chance mode). A game without chance
    events (TicTacToe) says False, and the env then skips seeding a stream nobody reads (5 us a reset)."""
    worst_legal_return: float = -1.0
    """The lowest return `GameState.returns()` gives a player in a game played to its end by legal moves: -1,
    the loser's `zero_sum_returns`. A game that scores in its own units declares its own (Kuhn Poker with
    `scoring="chips"`: -2 chips a round). `TextGameEnv` refuses an invalid-move penalty above it, since an
    invalid answer would then score better than losing by the rules, and warns if a game returns less."""
    invalid_move_penalty: float | None = None
    """The reward of an answer with no legal move when the env's `invalid_move_penalty` option is None; None:
    `worst_legal_return`. It may not be above `worst_legal_return`."""

    @abstractmethod
    def new_state(self, rng: random.Random) -> GameState[A]:
        """A fresh game whose chance events come from `rng`."""

    @abstractmethod
    def rules(self, player: int) -> str:
        """The opening text for `player`: the game, its role, and how to write a move."""

    @abstractmethod
    def describe(self, state: GameState[A], player: int, full_history: bool) -> str:
        """What `player` sees now: the position, and the past moves too if `full_history`."""

    @abstractmethod
    def format_action(self, action: A) -> str:
        """The canonical text of a move, as listed to the model and accepted back, e.g. `[bet]`."""

    def format_legal_actions(self, state: GameState[A]) -> Sequence[str]:
        """`format_action` of each of `state.legal_actions()`, in that order: the moves the env lists, once a
        position. A game with hundreds of moves (every offer of a negotiation) may return texts it cached."""
        return [self.format_action(action) for action in state.legal_actions()]

    def parse_action(self, move: str, state: GameState[A]) -> A:
        """Map the move text read from an answer to a legal action, or raise `InvalidMove` saying why.

        The default compares the move, without brackets, case and spacing, with each legal move's text; a
        game with an open-ended grammar (offers with amounts) overrides it.
        """
        legal = state.legal_actions()
        texts = self.format_legal_actions(state)
        stripped = move.strip()
        if stripped in texts:  # most answers write the move exactly as listed
            return legal[texts.index(stripped)]
        wanted = normalize_move(move)
        for action, text in zip(legal, texts):
            if normalize_move(text) == wanted:
                return action
        shown = ", ".join(texts)
        quoted = move if len(move) <= 200 else f"{move[:200]}..."  # never echo a megabyte answer into a prompt
        raise InvalidMove(f"'{quoted}' is not a legal move here; the legal moves are: {shown}")

    def legal_moves_text(self, state: GameState[A], legal: Sequence[str]) -> str:
        """The "Your legal moves: ..." part of the prompt, given the formatted legal moves.

        Listing every move is right for a handful of them; a game with hundreds (every offer of a
        negotiation) overrides this to state the grammar instead, keeping prompts short.
        """
        return ", ".join(legal)

    def figures(self, score: dict[str, Any], player: int) -> dict[str, float]:
        """`player`'s own numbers from a finished game's `GameState.score()`, to average over games in
        evaluation (Kuhn Poker's chips per round); none by default."""
        return {}

    def outcome_text(self, state: GameState[A]) -> str:
        """Why a finished game ended, in words (`infos["reason"]`): the rules return only data."""
        return "the game ended"

    def render(self, state: GameState[A]) -> str:
        """A compact picture of the whole state (both hands), for `render_mode="ansi"` and logs."""
        return self.describe(state, 0, full_history=False)


_OPENING_RUN = re.compile(r"[\[ ]*")
_CLOSING_RUN = re.compile(r"[\] ]*")


def normalize_move(move: str) -> str:
    """Case, spacing and outer brackets do not matter: '[ Bet ]', 'bet' and 'BET' are one move.

    Every matched pair of outer brackets goes, as if stripped one pair at a time, in time linear in the
    move's length however deep they nest (`[` * n + `]` * n is one pass, not n).
    """
    text = " ".join(move.split()).lower()  # what re.sub(r"\s+", " ", move).strip() gives, 5x faster
    if not text.startswith("[") or not text.endswith("]"):
        return text
    opening = _OPENING_RUN.match(text).group()
    closing = _CLOSING_RUN.match(text[::-1]).group()
    pairs = min(opening.count("["), closing.count("]"))
    start = _past_nth(opening, "[", pairs)
    end = len(text) - _past_nth(closing, "]", pairs)
    return text[start:end].strip() if start < end else ""


def _past_nth(run: str, char: str, n: int) -> int:
    """The index just past the n-th `char` of `run` (a run of `char` and single spaces): a binary search
    over C-speed counts, so a run of millions costs a few passes, not a Python loop."""
    low, high = n, min(len(run), 2 * n)  # single spaces: the n-th char is within the first 2n characters
    while low < high:
        mid = (low + high) // 2
        if run.count(char, 0, mid) >= n:
            high = mid
        else:
            low = mid + 1
    return low


def player_name(player: int) -> str:
    """The PettingZoo agent name of a player index."""
    return f"player_{player}"


PLAYER_NAMES = (player_name(0), player_name(1))
"""The agent names by player index, for code that names both on every turn."""


def zero_sum_returns(winner: int | None) -> tuple[float, float]:
    """+1/-1 for a winner, 0/0 for a draw (`winner` None)."""
    if winner is None:
        return (0.0, 0.0)
    return (1.0, -1.0) if winner == 0 else (-1.0, 1.0)
