"""Reward parsing: find the move inside a model's free-text answer.

The SPIRAL paper asks the model to reason and then put its move in `\\boxed{...}`. Models also write moves
the TextArena way, as a bracketed token such as `[bet]`. We read the last `\\boxed{}` if there is one (the
final answer wins over moves mentioned while reasoning), else the last bracketed token. This runs on every
answer a trainer samples, so it is a single linear scan with no backtracking regex: any string, of any
length, returns in time proportional to its length.
"""

from __future__ import annotations

import re
from typing import TypeVar

from spiral_envs.core import GameState, InvalidMove, TextGame

A = TypeVar("A")

_BOXED = "\\boxed"
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|texttt)\s*\{([^{}]*)\}")
_BRACKETED = re.compile(r"\[[^\[\]\n]{1,200}\]")
NO_MOVE = "no move found: end the answer with the move in \\boxed{}, e.g. \\boxed{%s}"
MAX_LATEX_NESTING = 8
"""Wrappers such as `\\text{\\textbf{...}}` are stripped this many levels deep; no model nests more."""
QUOTE_CHARS = 200
"""How much of an answer or a move a prompt or an error message quotes: never a megabyte echoed into a prompt."""


def last_boxed(answer: str) -> str | None:
    """Content of the last `\\boxed{...}` whose braces close; None if there is none.

    A box that never closes cannot contain the closing brace of an earlier box, so each earlier box is only
    scanned up to the start of the later one: the whole search is linear in the answer's length.
    """
    limit = len(answer)
    start = answer.rfind(_BOXED)
    while start != -1:
        i = start + len(_BOXED)
        while i < limit and answer[i] == " ":
            i += 1
        if i < limit and answer[i] == "{":
            close = answer.find("}", i, limit)
            if close != -1 and answer.find("{", i + 1, close) == -1:  # the usual flat box, found at C speed
                return answer[i + 1 : close]
            depth = 0
            for j in range(i, limit):
                c = answer[j]
                if c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                    if depth == 0:
                        return answer[i + 1 : j]
        limit = start
        start = answer.rfind(_BOXED, 0, start)
    return None


def last_bracketed(answer: str) -> str | None:
    """The last `[...]` token on one line (at most 200 characters inside), brackets included."""
    found = None
    for found in _BRACKETED.finditer(answer):  # noqa: B007 (the loop only keeps the last match)
        pass
    return found.group(0) if found else None


def strip_latex(move: str) -> str:
    """`\\text{bet}` -> `bet`: models often dress the boxed move in LaTeX."""
    if "\\" not in move:  # no LaTeX (the usual answer): the passes below would change nothing but the strip
        return move.strip()
    for _ in range(MAX_LATEX_NESTING):  # bounded: one pass per level, so unbounded depth would be quadratic
        previous, move = move, _TEXT_WRAPPER.sub(r"\1", move)
        if move == previous:
            break
    return move.replace("\\", "").strip()


def extract_move(answer: str) -> str | None:
    """The move an answer commits to, or None if it commits to none."""
    boxed = last_boxed(answer)
    if boxed is not None:
        return strip_latex(boxed)
    return last_bracketed(answer)


def shortened(text: str, limit: int = QUOTE_CHARS) -> str:
    """`text` as a prompt or an error message quotes it: whole up to `limit` characters, else its first `limit`
    and how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


def read_move(game: TextGame[A], state: GameState[A], answer: str) -> tuple[A, str]:
    """The legal action `answer` commits to at `state`, and its text as the game lists it (`format_action`).

    The one reading of an answer: the move it commits to (`extract_move`), read by the game's own
    `parse_action`. `TextGameEnv.step` plays what it returns, and a game's theory (`spiral_envs.theory`)
    counts a probe answer valid exactly when it returns, so "invalid" means one thing in play and in the
    strategy metrics. Raises `InvalidMove` saying why not: no move in the answer, or one the rules forbid here.
    """
    move = extract_move(answer)
    if move is None:
        legal = game.format_legal_actions(state)
        raise InvalidMove(NO_MOVE % (legal[0] if legal else "..."))
    action = game.parse_action(move, state)
    return action, game.format_action(action)
