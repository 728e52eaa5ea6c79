"""The move language of SimpleNegotiation-v1: its actions as data and the grammar that reads them from text.

A move is a public message holding at most one action token: `[Offer: 3 Wood -> 2 Gold]` (what the proposer
gives -> what it asks for), `[Accept]` or `[Deny]`; a message without a token just talks. `read_move` reads a
move without the state; the game (`negotiation.py`) checks it against the state.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import ClassVar

from spiral_envs.core import InvalidMove

RESOURCES = ("Wood", "Gold")
MAX_MESSAGE_CHARS = 2000
"""A longer message is an invalid move: it goes into the opponent's prompt, which must stay bounded."""
MAX_QUANTITY_DIGITS = 6
"""Longer numbers are refused before `int()`, which also keeps Python's int-parsing limit out of reach."""

Bundle = tuple[int, ...]
"""A count per resource, in `RESOURCES` order."""


@dataclass(frozen=True)
class Talk:
    """A message without an action token: a turn spent talking (an offer to this player lapses).

    The message is data the opponent reads, not part of what the move does, so it is left out of equality:
    every Talk is the same rules action, and `parse_action(format_action(a)) == a` holds for every action.
    """

    message: str = field(default="", compare=False)

    @property
    def text(self) -> str:
        """Talk has no token: its text is what was said."""
        return self.message


@dataclass(frozen=True)
class Offer:
    """The proposer gives `give` and asks for `get`; it stands until the opponent's next move."""

    give: Bundle
    get: Bundle
    message: str = field(default="", compare=False)

    @functools.cached_property
    def text(self) -> str:
        """The canonical token, kept on the object: the env formats every legal offer of every position, and
        the listed offers are shared objects (see `single_offers`)."""
        return offer_token(self.give, self.get)


@dataclass(frozen=True)
class Accept:
    """Take the offer made to this player on the opponent's last move."""

    message: str = field(default="", compare=False)
    text: ClassVar[str] = "[Accept]"


@dataclass(frozen=True)
class Deny:
    """Refuse the offer made to this player; any move but Accept refuses it too, this one only says so."""

    message: str = field(default="", compare=False)
    text: ClassVar[str] = "[Deny]"


Action = Talk | Offer | Accept | Deny


@functools.lru_cache(maxsize=4096)
def bundle_text(bundle: Bundle) -> str:
    return ", ".join(f"{n} {name}" for name, n in zip(RESOURCES, bundle, strict=True) if n) or "nothing"


def offer_token(give: Bundle, get: Bundle) -> str:
    return f"[Offer: {bundle_text(give)} -> {bundle_text(get)}]"


_TOKEN = re.compile(r"\[([^\[\]]*)\]")
"""Innermost bracket pairs; a regex without nested repetition, so a scan is linear in the text's length."""
_ARROW = re.compile(r"->|→|=>|⇒|⟶")
_SEPARATOR = re.compile(r",|\+|&|;|\band\b")
_TIMES = ("x", "*", "×")
_RESOURCE_INDEX = {name.lower(): i for i, name in enumerate(RESOURCES)}
_FORMAT = "[Offer: 3 Wood -> 2 Gold], [Accept] or [Deny]"


def _bare_token(message: str) -> Action | None:
    """The action of a message that is a whole well-formed token without its brackets, else None (talk)."""
    bare = message.strip("[] ")
    kind = _classify(bare)
    if kind == "accept":
        return Accept(message)
    if kind == "deny":
        return Deny(message)
    if kind == "offer":
        try:
            give, get = parse_offer(bare[len("offer") :])
        except InvalidMove:
            return None
        return Offer(give, get, message)
    return None


def _classify(token: str) -> str | None:
    """'offer', 'accept', 'deny' for an action token's bracket content, None for other bracketed talk."""
    text = token.strip().lower()
    if text.startswith("offer") and not text[5:6].isalpha():
        return "offer"
    word = text.rstrip(".!")
    return word if word in ("accept", "deny") else None


def _parse_bundle(text: str, side: str) -> Bundle:
    counts = [0] * len(RESOURCES)
    items = [item for item in _SEPARATOR.split(text) if item.strip()]
    if not items:
        raise InvalidMove(f"the offer names nothing {side}; write it as [Offer: 3 Wood -> 2 Gold]")
    for item in items:
        words = item.split()
        if len(words) == 3 and words[1] in _TIMES:
            words = [words[0], words[2]]
        elif len(words) == 1:
            digits = len(words[0]) - len(words[0].lstrip("0123456789"))
            words = [words[0][:digits], words[0][digits:]]
        if len(words) == 2 and len(words[0]) > 1 and words[0][-1] in _TIMES:
            words[0] = words[0][:-1]
        if len(words) != 2 or not words[0]:
            raise InvalidMove(f"cannot read {item.strip()[:50]!r} {side}: write a count then a resource, e.g. 3 Wood")
        number, name = words
        if not (number.isascii() and number.isdigit()):
            raise InvalidMove(f"{number[:20]!r} is not a count: quantities are whole numbers >= 1")
        if len(number) > MAX_QUANTITY_DIGITS:
            raise InvalidMove(f"the quantity {number[:20]}... is far more than anyone holds")
        resource = _RESOURCE_INDEX.get(name) if name in _RESOURCE_INDEX else _RESOURCE_INDEX.get(name.rstrip("s"))
        if resource is None:
            raise InvalidMove(f"{name[:30]!r} is not a resource here; the resources are {' and '.join(RESOURCES)}")
        quantity = int(number)
        if quantity < 1:
            raise InvalidMove("quantities must be at least 1")
        counts[resource] += quantity
    return tuple(counts)


def parse_offer(body: str) -> tuple[Bundle, Bundle]:
    """`3 wood -> 2 gold` (the content after 'Offer'): the bundles given and asked for."""
    body = body.strip().lower().rstrip(".! ")
    if body.startswith(":"):
        body = body[1:]
    sides = _ARROW.split(body)
    if len(sides) != 2:
        raise InvalidMove("an offer needs exactly one '->' between what you give and what you ask for")
    return _parse_bundle(sides[0], "to give"), _parse_bundle(sides[1], "to ask for")


def read_move(move: str) -> Action:
    """The action a move text holds, without checking it against the state; `InvalidMove` if unreadable.

    The grammar (the rules text states it, `tests/envs/test_negotiation.py` tabulates it):
    - a bracketed action token (`[Offer: ...]`, `[Accept]`, `[Deny]`) anywhere in the message is the move's
      action, and a malformed one (`[Offer: 3 Wheat -> 2 Gold]`) is an invalid move; two are invalid;
    - a message that is nothing but a well-formed token with its brackets left off ("Accept",
      "Offer: 3 Wood -> 2 Gold") counts as that token, since models often box the bare move;
    - every other message is talk: "Offer 3 Wood -> 2 Gold please", "Accept. Thanks", other bracketed
      words; except that a lone `[word]` is a mistyped token, not a message, and is invalid.
    """
    message = move.strip()
    if not message:
        raise InvalidMove(f"an empty move: write a message, an action token ({_FORMAT}), or both")
    if len(message) > MAX_MESSAGE_CHARS:
        raise InvalidMove(f"the message has {len(message)} characters; the limit is {MAX_MESSAGE_CHARS}")
    tokens = []
    for found in _TOKEN.finditer(message):
        kind = _classify(found.group(1))
        if kind is not None:
            tokens.append((kind, found.group(1)))
            if len(tokens) == 2:
                raise InvalidMove(
                    "a move may hold only one action token, and this one holds two; a counter-offer already "
                    "denies the offer made to you, so [Deny] is not needed with it"
                )
    if not tokens:
        if _TOKEN.fullmatch(message):
            raise InvalidMove(f"{message[:60]} is not an action token; the tokens are {_FORMAT}")
        return _bare_token(message) or Talk(message)
    kind, content = tokens[0]
    if kind == "accept":
        return Accept(message)
    if kind == "deny":
        return Deny(message)
    give, get = parse_offer(content.strip()[len("offer") :])
    return Offer(give, get, message)
