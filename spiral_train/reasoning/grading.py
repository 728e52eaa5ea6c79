"""Grading a reasoning answer: the last `\\boxed{}` of a response against the reference answer.

The response's answer is read as the games read moves (`spiral_envs.last_boxed`: the last box whose braces
close). A free-form answer is then correct when, in this order:

1. the normalised strings are equal (spaces, `\\left`/`\\right`, `\\!`, thousands separators, `\\text{}`
   wrappers, a trailing period and `^\\circ` dropped; `\\dfrac` read as `\\frac`), or
2. `math-verify` finds them equal (fractions and decimals, `\\sqrt`, intervals, sets, equations; sympy
   underneath), each call under a time limit in a separate process, so an expression that makes sympy hang
   fails that answer, within the limit, and nothing else: its verdict's method is then "timeout" (whether
   math-verify's own alarm stopped sympy or the child had to be replaced), counted in the summary.

A multiple-choice answer (the problem has `choices`) is correct when its letter is the reference letter: the
box may hold the letter (`B`, `(B)`, `\\text{B}`) or the text of a choice; with no box, the last "answer is
(B)" phrase. Extracted answers longer than `MAX_ANSWER_CHARS` are compared as strings only.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import re
import select
import subprocess
import sys
from dataclasses import dataclass

from spiral_envs.parsing import last_boxed

MAX_ANSWER_CHARS = 1000
"""Longer answers skip `math-verify`: no reference answer is that long, and parsing one costs seconds."""
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_TIMEOUT_S = 3600.0
"""The longest grading time-out accepted: an hour per comparison is already no limit at all."""

_WRAPPERS = re.compile(r"\\(?:text|textbf|mathrm|mbox|textit|mathbf)\s*\{([^{}]*)\}")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?:\D|$))")
_ANSWER_IS = re.compile(r"answer is:?\s*\**\s*\(?([A-Z])\)?(?![A-Za-z])")


@dataclass(frozen=True)
class Verdict:
    """What the grader read from a response, whether it is right, and which rule decided."""

    extracted: str | None
    correct: bool
    method: str
    """"string", "math-verify", "choice", "no answer", "timeout", or "different"."""


def normalize(answer: str) -> str:
    """The string form two answers are compared in before any parsing (see the module docstring)."""
    text = answer.strip()
    for _ in range(4):  # nested wrappers, a few levels deep at most
        stripped = _WRAPPERS.sub(r"\1", text)
        if stripped == text:
            break
        text = stripped
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    for token in ("\\left", "\\right", "\\!", "\\,", "\\;", "\\ ", "^\\circ", "^{\\circ}", "$"):
        text = text.replace(token, "")
    text = _THOUSANDS.sub("", text)
    return "".join(text.split()).rstrip(".")


def choice_letter(extracted: str | None, response: str, choices: list[str]) -> str | None:
    """The letter a multiple-choice response picks, or None."""
    letters = LETTERS[: len(choices)]
    if extracted is not None:
        text = normalize(extracted).strip("()[]").rstrip(":")
        if len(text) == 1 and text.upper() in letters:
            return text.upper()
        for letter, choice in zip(letters, choices):
            if text and text == normalize(choice):
                return letter
        return None
    found = None
    for found in _ANSWER_IS.finditer(response):  # noqa: B007 (the loop keeps the last match)
        pass
    if found is not None and found.group(1) in letters:
        return found.group(1)
    return None


def reference_letter(answer: str, choices: list[str]) -> str:
    """The reference answer as a letter: the letter itself, or the choice whose text it is."""
    text = answer.strip().strip("()")
    if len(text) == 1 and text.upper() in LETTERS[: len(choices)]:
        return text.upper()
    for letter, choice in zip(LETTERS, choices):
        if normalize(choice) == normalize(answer):
            return letter
    raise ValueError(f"the reference answer {answer!r} is neither a letter nor one of the choices {choices}")


class Grader:
    """Grades responses; `math-verify` runs in one child process (`python -m spiral_train.reasoning.grading`), which is
    replaced after a call that runs out of time.

    Use it as a context manager (or call `close`), so the child process ends with the grading.
    """

    def __init__(self, timeout_s: float = 5.0) -> None:
        if not (isinstance(timeout_s, int | float) and math.isfinite(timeout_s) and 0 < timeout_s <= MAX_TIMEOUT_S):
            raise ValueError(
                f"grading timeout {timeout_s!r}: give seconds per math-verify comparison, > 0 and <= {MAX_TIMEOUT_S:g} "
                "(--grading-timeout 5)"
            )
        self.timeout_s = timeout_s
        self._child: subprocess.Popen | None = None

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def grade(self, response: str, answer: str, choices: list[str] | None = None) -> Verdict:
        extracted = last_boxed(response)
        if choices:
            picked = choice_letter(extracted, response, choices)
            shown = picked if extracted is None else extracted
            if picked is None:
                return Verdict(shown, False, "no answer")
            return Verdict(shown, picked == reference_letter(answer, choices), "choice")
        if extracted is None or not extracted.strip():
            return Verdict(extracted, False, "no answer")
        if normalize(extracted) == normalize(answer):
            return Verdict(extracted, True, "string")
        if len(extracted) > MAX_ANSWER_CHARS:
            return Verdict(extracted, False, "different")
        same = self._math_verify(answer, extracted)
        if same is None:
            return Verdict(extracted, False, "timeout")
        return Verdict(extracted, same, "math-verify" if same else "different")

    def _math_verify(self, gold: str, predicted: str) -> bool | None:
        """math-verify's verdict, or None if it ran out of time (the child is then replaced)."""
        if self._child is None or self._child.poll() is not None:
            self._start()
        child = self._child
        assert child is not None and child.stdin is not None and child.stdout is not None
        child.stdin.write(json.dumps([gold, predicted, self.timeout_s]).encode() + b"\n")
        child.stdin.flush()
        ready, _, _ = select.select([child.stdout], [], [], self.timeout_s + 2.0)
        line = child.stdout.readline() if ready else b""
        if not line:  # stuck in code that ignored math-verify's own alarm (or died): replace it
            self.close()
            return None
        verdict = json.loads(line)
        return None if verdict is None else bool(verdict)

    def _start(self) -> None:
        if importlib.util.find_spec("math_verify") is None:
            raise ImportError('grading free-form answers needs math-verify: pip install -e ".[eval]"')
        self._child = subprocess.Popen(
            [sys.executable, "-m", "spiral_train.reasoning.grading"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # math-verify logs each of its timeouts; the verdict says it already
        )

    def close(self) -> None:
        if self._child is not None:
            self._child.kill()
            self._child.wait()
            for stream in (self._child.stdin, self._child.stdout):
                if stream is not None:
                    stream.close()
        self._child = None


class _TimeoutSeen(logging.Handler):
    """Notes math-verify's own time-outs, which it logs and then reports as "not equal"."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen = False

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Timeout during"):
            self.seen = True


def _serve() -> None:
    """The child process: one JSON line [gold, predicted, timeout] in, one JSON verdict line out: true, false,
    or null when math-verify ran out of time on a comparison and found no other that matched."""
    from math_verify import parse, verify

    timeouts = _TimeoutSeen()
    logging.getLogger("math_verify").addHandler(timeouts)
    for line in sys.stdin:
        gold, predicted, timeout = json.loads(line)
        seconds = max(1, round(timeout))
        timeouts.seen = False
        try:
            same: bool | None = bool(
                verify(
                    parse(f"${gold}$", parsing_timeout=seconds),
                    parse(f"${predicted}$", parsing_timeout=seconds),
                    timeout_seconds=seconds,
                )
            )
        except Exception:  # a parse or comparison that fails is a wrong answer, not a crash
            same = False
        if not same and timeouts.seen:
            same = None
        sys.stdout.write(json.dumps(same) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve()
