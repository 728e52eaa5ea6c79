"""Every two-player TextArena game as a spiral_envs text game: `spiral_envs.make("textarena/TicTacToe-v0")`.

`TextArenaGame` is a `TextGame` whose rules are a TextArena env (the raw env, without TextArena's wrappers),
so `TextGameEnv` owns the protocol exactly as for our games: the move is read from the answer by our parser
(the last `\\boxed{}`, else the last bracketed token) and handed to the game bracketed, as TextArena's own
`ActionFormattingWrapper` does; an invalid move gets our `invalid_move_penalty` and `error_allowance`.

What this layer fixes, measured on TextArena 0.7.4:
- **Chance.** TextArena deals from the global `random` module (a few games from numpy's), so interleaved
  games change each other's cards and a seed does not fix a game. Every call into a game here runs with the
  `random` module's functions bound to the game's own stream (`TextGameEnv`'s seeded `random.Random`), and
  numpy's global stream swapped for one drawn from it in a game that uses numpy, so `reset(seed=s)` replays
  a game exactly and two games never touch each other.
- **History.** TextArena's observation wrappers keep their message log across `reset()` (the third game's
  first prompt holds three copies of the rules), and some envs keep state from their constructor (the
  SpiteAndMalice deck runs out by the second game). Here every game is a new TextArena env with an empty log.
- **Turn limits.** TextArena checks `turn >= max_turns` before counting the move being played, so
  `max_turns=10` plays 11 moves. Here the limit counts it: `max_turns=N` plays at most N moves.
- **Invalid moves.** TextArena's own count of errors (`error_allowance` inside its state) is replaced by
  ours: a move TextArena calls invalid raises `InvalidMove` with TextArena's reason (a long move it quotes
  is shortened there, as every answer a prompt quotes is).
- **Hostile answers.** TextArena reads a move with regexes that backtrack (LiarsDice's `[bid` + n spaces
  + `x]` takes time quadratic in n, ConnectFour's any long text: `.*` before and after a bracket), so
  TextArena only ever sees a move-sized string: the move is read out of the answer by our linear parser,
  and one longer than `MAX_MOVE_CHARS` is an invalid move before TextArena reads it.
- **Threads.** TextArena's chance comes from the one global `random` module, so the rebinding above holds
  a lock: games in several threads each draw from their own stream, and the module is restored after each
  call. (A thread drawing from the global `random` module while a TextArena game is being stepped in another
  still draws from that game's stream; nothing short of TextArena taking an `rng` can prevent that.)
- **Rewards** are checked to be zero-sum at the end; `infos` says `"zero_sum": False` for a game whose are
  not (and a warning names it once).

A TextArena game lists no legal set: `legal_actions()` here are the bracketed moves its latest messages
offer (its "Available Moves"), which is what a random opponent plays; TextArena judges every move.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
import inspect
import random
import re
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from spiral_envs.core import TERMINAL, GameState, InvalidMove, TextGame
from spiral_envs.parsing import QUOTE_CHARS, shortened

PREFIX = "textarena/"
"""The namespace of TextArena ids in spiral_envs: "textarena/" + TextArena's own id."""
INSTALL_HINT = 'pip install "spiral-envs[textarena]" (or: pip install textarena)'
_TWO_PLAYER = re.compile(r"TwoPlayerState|\b2\s*<=\s*num_players")
"""How a TextArena env's source says it is played by two: its state class, or a players range from 2."""
_WRAPPER_VARIANTS = ("-raw", "-train")
"""TextArena id suffixes that differ from the base id only by TextArena's wrappers, which this layer replaces."""
_MOVE = re.compile(r"\[[^\[\]\n]{1,200}\]")
_RANDOM_FUNCTIONS = tuple(
    name for name in random.__all__ if isinstance(getattr(getattr(random, name), "__self__", None), random.Random)
)
"""The `random` module's functions (`random.shuffle`, ...), each a method of its hidden global instance."""
_NUMPY_RANDOM = re.compile(r"\b(?:np|numpy)\.random\.")
_ROLE_TAG = re.compile(r"^\[(?:GAME|Player \d+)\]$")
GAME_ID = -1
"""TextArena's sender id of the game's own messages."""
MAX_MOVE_CHARS = 2000
"""The longest move handed to TextArena (the limit of SimpleNegotiation-v1's messages): its regexes take time
quadratic in a crafted move's length, about 30 ms at this length, and a move of a free-talk game is a message."""
_RANDOM_LOCK = threading.RLock()
"""Held while the `random` module's functions are bound to one game's stream (see `TextArenaState._own_random`)."""


def installed() -> bool:
    """Whether TextArena is importable here."""
    return importlib.util.find_spec("textarena") is not None


@functools.cache
def textarena_ids() -> tuple[str, ...]:
    """The two-player TextArena ids, as TextArena names them (no prefix); empty without TextArena.

    Two-player is read from each env's source without importing it (some import chess engines or word
    lists): its state class is `TwoPlayerState`, or it accepts 2 players and up (Snake, Poker, ...).
    """
    if not installed():
        return ()
    registry = _textarena_registry()
    out = []
    for ta_id, ta_spec in registry.items():
        if ta_id.endswith(_WRAPPER_VARIANTS) or not isinstance(ta_spec.entry_point, str):
            continue
        source = _module_source(ta_spec.entry_point.partition(":")[0])
        if source is not None and _TWO_PLAYER.search(source):
            out.append(ta_id)
    return tuple(sorted(out))


def _textarena_registry() -> dict[str, Any]:
    from textarena.envs.registration import ENV_REGISTRY

    return ENV_REGISTRY


def _module_source(module: str) -> str | None:
    spec = importlib.util.find_spec(module.partition(".")[0])
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent.parent / (module.replace(".", "/") + ".py")
    return path.read_text() if path.exists() else None


@functools.cache
def game_class(textarena_id: str) -> type[TextArenaGame]:
    """The `TextGame` class of one TextArena id, what `spiral_envs.make` builds for "textarena/<id>"."""
    name = "TextArena_" + re.sub(r"\W", "_", textarena_id)
    return type(name, (TextArenaGame,), {"textarena_id": textarena_id, "__module__": __name__})


class TextArenaUnavailable(RuntimeError):
    """TextArena could not build a game here (it needs a network, an API key, a newer Python, ...)."""

    def __init__(self, env_id: str, cause: BaseException) -> None:
        first_line = next((line.strip() for line in str(cause).splitlines() if any(c.isalnum() for c in line)), "")
        super().__init__(
            f"TextArena could not build {env_id}: {type(cause).__name__}: {first_line} "
            "(docs/games.md lists the TextArena games that need a network, an API key or Python 3.12)"
        )


class TextArenaState(GameState[str]):
    """The position of a TextArena game: its env, driven under the game's own random stream."""

    def __init__(self, game: TextArenaGame, rng: random.Random) -> None:
        self.game = game
        self.rng = rng
        self.rng_functions = {name: getattr(rng, name) for name in _RANDOM_FUNCTIONS}
        self.np_rng = np.random.RandomState(rng.getrandbits(32)) if game.uses_numpy else None
        self.log: dict[int, list[tuple[int, str, Any]]] = {0: [], 1: []}
        """Every message each player has received, as TextArena's (sender, text, kind) triples."""
        self.lines: dict[int, list[str]] = {0: [], 1: []}
        """The same messages as TextArena's LLM observation wrapper writes them: "[GAME] ...", "[Player 1] ..."."""
        self.rules_text: dict[int, list[str]] = {0: [], 1: []}
        self.board: dict[int, str | None] = {0: None, 1: None}
        """Each player's latest board (TextArena's GAME_BOARD message), which the "current" history shows."""
        with self._own_random():
            self.env = game.env_class(**game.options)
            """This game's own TextArena env, new for every game: some keep state from `__init__` across
            `reset()` (SpiteAndMalice deals its deck once), and building one costs about a microsecond."""
            self.env.reset(num_players=2, seed=None)
        self._patch()
        self._drain()

    # TextArena's rules, driven -----------------------------------------------------------------------

    @contextmanager
    def _own_random(self) -> Iterator[None]:
        """Run TextArena with the `random` module's functions bound to this game's stream (and numpy's global
        stream, for a game that uses it, swapped for this game's)."""
        with _RANDOM_LOCK:  # one game at a time, or threads would draw from and restore each other's streams
            module = vars(random)
            outside = {name: module[name] for name in _RANDOM_FUNCTIONS}
            module.update(self.rng_functions)
            if self.np_rng is not None:
                np_outside = np.random.get_state()
                np.random.set_state(self.np_rng.get_state())
            try:
                yield
            finally:
                module.update(outside)
                if self.np_rng is not None:
                    self.np_rng.set_state(np.random.get_state())
                    np.random.set_state(np_outside)

    def _patch(self) -> None:
        """Our protocol in TextArena's state: invalid moves are reported, not counted; turn limits count the
        move being played."""
        state = self.env.state
        self.invalid_reason: str | None = None

        def set_invalid_move(reason: str = "", *args: Any, **kwargs: Any) -> bool:
            self.invalid_reason = str(reason) or "TextArena rejected the move"
            state.made_invalid_move = True  # TextArena's step then keeps the same player to move
            return False

        def check_turn_limit() -> bool:
            return state.max_turns is not None and state.turn + 1 >= state.max_turns and not state.done

        state.set_invalid_move = set_invalid_move
        state.check_turn_limit = check_turn_limit

    def _drain(self) -> None:
        """Move TextArena's new messages into the players' logs."""
        observations = self.env.state.observations
        for player in (0, 1):
            new = observations.get(player)
            if not new:
                continue
            observations[player] = []
            self.log[player].extend(new)
            self.lines[player].extend(f"[{_sender(sender)}] {message}" for sender, message, _ in new)
            for _, message, kind in new:
                if kind.name == "PROMPT":
                    self.rules_text[player].append(message)
                elif kind.name == "GAME_BOARD":
                    self.board[player] = message

    def current_player(self) -> int:
        state = self.env.state
        return TERMINAL if state.done else int(state.current_player_id)

    def legal_actions(self) -> Sequence[str]:
        """The bracketed moves of the latest message to the mover since its last move that names any (its
        "Available Moves"), else those of its rules (their examples); none if neither names one (free talk).
        What a random opponent plays, not a legal set: TextArena judges every move."""
        player = self.current_player()
        if player == TERMINAL:
            return ()
        for sender, message, _ in reversed(self.log[player]):
            if sender == player:
                break
            moves = _moves_in(message)
            if moves:
                return moves
        return _moves_in("\n".join(self.rules_text[player]))

    def apply_action(self, action: str) -> None:
        self.invalid_reason = None
        try:
            with self._own_random():
                self.env.step(action)
        except Exception as err:  # a TextArena bug on odd input must not stop a training step
            raise InvalidMove(f"TextArena raised {type(err).__name__} on this move: {err}") from err
        finally:
            self._drain()
        if self.invalid_reason is not None:
            reason = self.invalid_reason
            if len(action) > QUOTE_CHARS:  # LiarsDice quotes the move: a prompt shows it shortened
                reason = reason.replace(action, shortened(action))
            raise InvalidMove(reason)

    def returns(self) -> tuple[float, float]:
        rewards = self.env.state.rewards or {}
        return (float(rewards.get(0, 0.0)), float(rewards.get(1, 0.0)))

    def player_view(self, player: int) -> dict[str, Any]:
        return {"messages": [message for _, message, _ in self.log[player]]}

    def score(self) -> dict[str, Any]:
        returns = self.returns()
        zero_sum = abs(returns[0] + returns[1]) < 1e-9
        if not zero_sum:
            self.game.warn_not_zero_sum(returns)
        return {"zero_sum": zero_sum}


class TextArenaGame(TextGame[str]):
    """A two-player TextArena game (`textarena_id`, set by `game_class`), with its constructor's options.

    The options are TextArena's own (e.g. `max_turns` of SimpleNegotiation-v0), over the defaults its
    registry gives the id.
    """

    textarena_id: str = ""
    default_history = "full"  # TextArena's default observation wrapper shows every message

    def __init__(self, **options: Any) -> None:
        if not installed():
            raise ImportError(f"{PREFIX}{self.textarena_id} needs TextArena: {INSTALL_HINT}")
        env_id = PREFIX + self.textarena_id
        ta_spec = _textarena_registry()[self.textarena_id]
        module, _, attr = ta_spec.entry_point.partition(":")
        try:
            env_class = getattr(importlib.import_module(module), attr)
        except Exception as err:  # SyntaxError under Python < 3.12, a missing chess engine, ...
            raise TextArenaUnavailable(env_id, err) from err
        accepted = [p for p in inspect.signature(env_class.__init__).parameters if p != "self"]
        for name in options:
            if name not in accepted:
                hint = difflib.get_close_matches(name, accepted, n=1)
                did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise TypeError(
                    f"{env_id} has no option {name!r}{did_you_mean}; its options are: {', '.join(accepted)}, "
                    "and the env's: history, invalid_move_penalty, error_allowance, render_mode"
                )
        self.options = {**ta_spec.kwargs, **options}
        try:
            env_class(**self.options)  # once now, so a game that cannot be built here fails at `make`
        except Exception as err:  # a word list to download, an API key, a data file TextArena did not ship
            raise TextArenaUnavailable(env_id, err) from err
        self.env_class = env_class
        self.uses_numpy = bool(_NUMPY_RANDOM.search(_module_source(module) or ""))
        """Whether the game draws from numpy's global stream too (swapping it costs ~40 us a call)."""
        self._warned = False

    def new_state(self, rng: random.Random) -> TextArenaState:
        return TextArenaState(self, rng)

    def rules(self, player: int) -> str:
        return ""  # TextArena writes its rules into the first message, which can depend on the deal

    def describe(self, state: GameState[str], player: int, full_history: bool) -> str:
        """ "full": every message, as TextArena's LLM observation wrapper writes them; "current": the rules
        and the latest board (TextArena's board wrapper), or every message for a game that sends no board."""
        assert isinstance(state, TextArenaState)
        board = state.board[player]
        if not full_history and board is not None:
            return "\n\n".join([*state.rules_text[player], board])
        return "\n".join(state.lines[player])

    def format_action(self, action: str) -> str:
        return action

    def parse_action(self, move: str, state: GameState[str]) -> str:
        """The move as TextArena reads it: bracketed (a bare `4` becomes `[4]`); TextArena judges it. A move
        longer than `MAX_MOVE_CHARS` is invalid here, unread by TextArena."""
        move = move.strip()
        if len(move) > MAX_MOVE_CHARS:
            raise InvalidMove(
                f"the move has {len(move):,} characters; a move may hold at most {MAX_MOVE_CHARS:,}: "
                f"'{shortened(move)}'"
            )
        return move if "[" in move or "]" in move else f"[{move}]"

    def legal_moves_text(self, state: GameState[str], legal: Sequence[str]) -> str:
        return ""  # TextArena's own messages state the moves

    def outcome_text(self, state: GameState[str]) -> str:
        assert isinstance(state, TextArenaState)
        info = getattr(state.env.state, "game_info", {}) or {}
        reasons = [str(v.get("reason")) for v in info.values() if isinstance(v, dict) and v.get("reason")]
        return reasons[0] if reasons else "the game ended"

    def render(self, state: GameState[str]) -> str:
        return self.describe(state, 0, full_history=False)

    def warn_not_zero_sum(self, returns: tuple[float, float]) -> None:
        if not self._warned:
            self._warned = True
            message = f"{PREFIX}{self.textarena_id} ended with rewards {returns}, which are not zero-sum"
            warnings.warn(message, stacklevel=2)


def _moves_in(text: str) -> tuple[str, ...]:
    """The distinct bracketed tokens of a message, in order, without TextArena's role tags."""
    return tuple(dict.fromkeys(m for m in _MOVE.findall(text) if not _ROLE_TAG.match(m)))


def _sender(sender: int) -> str:
    return "GAME" if sender == GAME_ID else f"Player {sender}"
