"""A `gymnasium.spaces.Text` fit for prompts and free-text answers.

Gymnasium's `Text` only admits an alphanumeric charset (no spaces, no newlines) and reports `dtype=str`,
while PettingZoo's `api_test` compares that dtype with the observation's `.dtype`. Observations are
`Prompt`s, strings that report numpy's unicode dtype `<U{length}` as `numpy.str_` does, so this space admits
any unicode text and reports a dtype that equals every unicode dtype.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np
from gymnasium import spaces

SAMPLE_CHARSET = string.ascii_letters + string.digits + string.punctuation + " \n"
MAX_SAMPLE_LENGTH = 256
"""Samples stay short: a random answer is as invalid at 256 characters as at 10 million, and far cheaper."""


class Prompt(str):
    """An observation: a `str` (every str operation, `str(p) == p`) with the `dtype` numpy gives text.

    Not `numpy.str_`, whose `str()` copies through numpy at 10x the cost of a plain string's: every agent
    and trainer turns the observation into a `str` on every turn.
    """

    __slots__ = ()

    @property
    def dtype(self) -> np.dtype:
        """`<U{length}`, as `numpy.str_(self).dtype`."""
        return np.dtype(f"<U{len(self)}")


class AnyUnicodeDType:
    """Equal to every numpy unicode dtype, whatever its length."""

    kind = "U"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, (np.dtype, AnyUnicodeDType)) and other.kind == "U"

    def __hash__(self) -> int:
        return hash("AnyUnicodeDType")

    def __repr__(self) -> str:
        return "dtype('<U*')"


class FreeText(spaces.Text):
    """Any text of at most `max_length` characters; samples printable ASCII (for `api_test`'s random moves)."""

    def __init__(self, max_length: int, *, min_length: int = 0, seed: int | None = None) -> None:
        super().__init__(max_length, min_length=min_length, charset=SAMPLE_CHARSET, seed=seed)
        self.dtype = AnyUnicodeDType()  # type: ignore[assignment]

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        if mask is None and probability is None:
            upper = min(self.max_length, MAX_SAMPLE_LENGTH)
            length = int(self.np_random.integers(self.min_length, upper + 1))
            return super().sample(mask=(length, None))
        return super().sample(mask=mask, probability=probability)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"FreeText(max_length={self.max_length})"
