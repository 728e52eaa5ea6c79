"""SimpleNegotiation-v1: two players trade Wood and Gold, as in the SPIRAL paper.

Both start with 10 Wood and 10 Gold. player_0 values Wood 5 and Gold 15, player_1 the reverse, and each sees
only its own values. Players alternate turns (player_0 first) for `max_turns` turns in all. A move is a public
message holding at most one action token: `[Offer: 3 Wood -> 2 Gold]` (what the proposer gives -> what it
asks for), `[Accept]` or `[Deny]`; a message without a token just talks. As in every game, the move is the
answer's `\\boxed{}` (else its last bracketed token): talk outside a box is no move, and a message over
`MAX_MESSAGE_CHARS` is invalid; the rules text says both. Whoever's inventory value (by its own values) grew
more wins. The paper shows every past message, which is this game's default.

With these values a trade's outcome is set by counting units: if player_0's inventory changes by (dW, dG),
player_0 gains 5dW + 15dG and player_1 gains -15dW - 5dG, so player_0 wins by 20(dW + dG). A trade that
helps both can still lose the game: `[Offer: 3 Wood -> 2 Gold]` gives player_0 +15 and player_1 +35.
"""

from __future__ import annotations

import functools
import operator
import random
from collections.abc import Sequence
from typing import Any, NamedTuple

from spiral_envs.agents import boxed
from spiral_envs.core import (
    PLAYER_NAMES,
    TERMINAL,
    GameState,
    InvalidMove,
    TextGame,
    zero_sum_returns,
)
from spiral_envs.games.negotiation_moves import (
    MAX_MESSAGE_CHARS,
    RESOURCES,
    Accept,
    Action,
    Bundle,
    Deny,
    Offer,
    Talk,
    bundle_text,
    offer_token,
    read_move,
)

START = (10, 10)
"""Each player's opening inventory, one count per resource in `RESOURCES` order."""
VALUES = ((5, 15), (15, 5))
"""VALUES[player][resource]: what one unit is worth to that player."""

_ANSWERS = (Accept(Accept.text), Deny(Deny.text))
"""The listed answers, each with its token as its message: what `read_move` makes of a move written as listed."""


class MoveRecord(NamedTuple):
    """One played move. `answered` is the offer that was pending to the mover; the action says its fate."""

    turn: int
    player: int
    action: Action
    answered: Offer | None


class Trade(NamedTuple):
    """An executed trade: `proposer` gave `give` and received `get` from its opponent."""

    turn: int
    proposer: int
    give: Bundle
    get: Bundle


def inventory_value(inventory: Bundle, player: int) -> int:
    return value_at(inventory, VALUES[player])


def value_at(inventory: Bundle, values: Bundle) -> int:
    """What `inventory` is worth at `values` (one per resource); ValueError if their lengths differ."""
    if len(inventory) != len(values):
        raise ValueError(f"bundles of different lengths: {inventory!r:.50} and {values!r:.50}")
    return sum(map(operator.mul, inventory, values))  # a third of the cost of a zip generator


START_VALUES = tuple(value_at(START, values) for values in VALUES)
"""START_VALUES[player]: what the opening inventory is worth to that player, the base its gain is taken from."""


def covers(inventory: Bundle, bundle: Bundle) -> bool:
    """Whether `inventory` holds every resource of `bundle` (two bundles of one length)."""
    if len(inventory) != len(bundle):
        raise ValueError(f"bundles of different lengths: {inventory!r:.50} and {bundle!r:.50}")
    return all(map(operator.ge, inventory, bundle))


def named(bundle: Bundle) -> dict[str, int]:
    """Every resource's count by name, a new dict each call (views are the caller's to keep)."""
    return _named(bundle)[0].copy()


def bundle_dict(bundle: Bundle) -> dict[str, int]:
    """The resources a bundle names, by name (zero counts left out), as views and scores show it."""
    return _named(bundle)[1].copy()


@functools.lru_cache(maxsize=4096)
def _named(bundle: Bundle) -> tuple[dict[str, int], dict[str, int]]:
    """`named` and `bundle_dict` of a bundle, built once; their callers hand out copies."""
    full = dict(zip(RESOURCES, bundle, strict=True))
    return full, {name: n for name, n in full.items() if n}


def _unit(resource: int, n: int) -> Bundle:
    return tuple(n if i == resource else 0 for i in range(len(RESOURCES)))


@functools.lru_cache(maxsize=4096)  # in this game n, m <= 20: 2 * 20 * 20 offers in all
def _single_offer(give: int, n: int, get: int, m: int) -> Offer:
    """The listed offer of n of resource `give` for m of resource `get`, with its token as its message.

    One object per offer, shared by every position that lists it: an Offer is frozen, and the rules only ask
    whether an action is the one a position listed, never which position built it."""
    give_bundle, get_bundle = _unit(give, n), _unit(get, m)
    return Offer(give_bundle, get_bundle, offer_token(give_bundle, get_bundle))


@functools.lru_cache(maxsize=4096)
def single_offers(mine: Bundle, theirs: Bundle) -> tuple[Offer, ...]:
    """Every offer of n of one resource for m of another that `mine` can pay and `theirs` can pay back.

    Cached by the two inventories: few distinct pairs occur, and this is the bulk of `legal_actions`. The
    offers themselves come from `_single_offer`, so a position seen for the first time builds no new ones.
    """
    return tuple(
        _single_offer(g, n, r, m)
        for g, have in enumerate(mine)
        for r, stock in enumerate(theirs)
        if g != r
        for n in range(1, have + 1)
        for m in range(1, stock + 1)
    )


Legal = tuple[tuple[Action, ...], tuple[str, ...], dict[str, Action]]


@functools.lru_cache(maxsize=1024)  # every resource totals 20, so there are at most 441 * 2 keys
def _legal(mine: Bundle, theirs: Bundle, answerable: bool) -> Legal:
    """The mover's legal actions, their texts, and each action by its text, by what decides them: both
    inventories and whether an offer waits for an answer. The same few keys recur, so each is built once."""
    actions = (_ANSWERS if answerable else ()) + single_offers(mine, theirs)
    texts = tuple(action.text for action in actions)
    return actions, texts, dict(zip(texts, actions, strict=True))


class NegotiationState(GameState[Action]):
    """Inventories, the one pending offer, and the move history; turn `t` belongs to player `t % 2`.

    An offer lives for exactly one reply: whatever its receiver plays next resolves it (Accept trades, any
    other move denies it, as TextArena's "[Deny] (default)"). So there is at most one pending offer, it is
    always addressed to the player to move, and a new offer never has an older one of its own to replace.
    """

    def __init__(self, max_turns: int) -> None:
        self.max_turns = max_turns
        self.inventories: list[Bundle] = [START, START]
        self.turn = 0
        self.pending: tuple[int, Offer] | None = None
        """(proposer, offer); after the last turn it may hold an offer that nobody can answer any more."""
        self.moves: list[MoveRecord] = []
        self.trades: list[Trade] = []
        self.messages: list[tuple[int, str]] = []
        """(player, what it said) for every move: the public record, kept as it grows for the views."""
        self._table: Legal | None = None
        """`legal_table()` of this position, looked up once: every move asks for it several times."""

    def current_player(self) -> int:
        return TERMINAL if self.turn >= self.max_turns else self.turn % 2

    def is_terminal(self) -> bool:
        return self.turn >= self.max_turns

    def offer_to(self, player: int) -> Offer | None:
        """The offer waiting for `player`'s answer, if any."""
        pending = self.pending
        if pending is not None and pending[0] != player and not self.is_terminal():
            return pending[1]
        return None

    def legal_actions(self) -> tuple[Action, ...]:
        """[Accept] and [Deny] when they are legal, then every single-resource offer; talk is left out.

        Talk is always legal but is not a move one can list (its content is free), so a random agent plays
        offers and answers only. The list is never empty mid-game: each resource totals 20 units, the mover
        holds at least one unit of some resource r (every trade gives it something back), and either the
        opponent holds another resource or the mover holds all of the other one and the opponent some r.
        """
        if self.is_terminal():
            return ()
        return self.legal_table()[0]

    def legal_table(self) -> Legal:
        """This position's legal actions, their texts, and each action by its text (`_legal`): shared and
        cached, so read them, never edit them. Mid-game only."""
        table = self._table
        if table is None:
            player = self.turn % 2
            answerable = self.offer_to(player) is not None
            table = self._table = _legal(self.inventories[player], self.inventories[1 - player], answerable)
        return table

    def check(self, action: Action) -> None:
        """Raise `InvalidMove` saying why, if the player to move may not play `action` now."""
        if self.is_terminal():
            raise InvalidMove("the game is over")
        # The env's moves arrive as the very objects `_legal` listed for this position, and those are legal
        # by construction: [Accept] and [Deny] are listed only when an offer waits, offers only when both
        # sides can pay. Any other action, equal or not, gets the full checks below.
        message = getattr(action, "message", None)
        if isinstance(message, str) and self.legal_table()[2].get(message) is action:
            return
        player = self.turn % 2
        if isinstance(action, Talk):
            return
        if isinstance(action, Offer):
            _check_offer(action, self.inventories[player], self.inventories[1 - player])
            return
        if not isinstance(action, (Accept, Deny)):
            raise InvalidMove(f"{type(action).__name__} is not a negotiation action; use Talk, Offer, Accept or Deny")
        verb = "accept" if isinstance(action, Accept) else "deny"
        offer = self.offer_to(player)
        if offer is None:
            raise InvalidMove(f"there is no offer to {verb}: an offer can only be answered on the turn after it")

    def apply_action(self, action: Action) -> None:
        self.check(action)
        player = self.turn % 2
        answered = self.offer_to(player)
        if isinstance(action, Accept):
            assert answered is not None
            proposer = 1 - player
            # The offer was made on the previous move and checked then against both inventories (the proposer
            # holds what it gives, the receiver what it is asked for). Nothing has moved since: inventories only
            # change when the receiver of the one pending offer accepts it, which is happening now. So both
            # sides can still pay, and a trade never needs a second affordability rule.
            assert covers(self.inventories[proposer], answered.give), "a pending offer became unaffordable"
            assert covers(self.inventories[player], answered.get), "a pending offer asks for what is gone"
            self.inventories[proposer] = _add(self.inventories[proposer], answered.get, answered.give)
            self.inventories[player] = _add(self.inventories[player], answered.give, answered.get)
            self.trades.append(Trade(self.turn, proposer, answered.give, answered.get))
        self.pending = (player, action) if isinstance(action, Offer) else None
        self.moves.append(MoveRecord(self.turn, player, action, answered))
        self.messages.append((player, action.message or action.text))
        self.turn += 1
        self._table = None

    def value(self, player: int) -> int:
        return inventory_value(self.inventories[player], player)

    def gain(self, player: int) -> int:
        """How much `player`'s inventory value grew, by its own values; the game is decided on this."""
        return self.value(player) - START_VALUES[player]

    def winner(self) -> int | None:
        g0, g1 = self.gain(0), self.gain(1)
        return None if g0 == g1 else (0 if g0 > g1 else 1)

    def returns(self) -> tuple[float, float]:
        return zero_sum_returns(self.winner())

    def player_view(self, player: int) -> dict[str, Any]:
        """Own inventory and values; the opponent's inventory is public (known start, public trades), its
        values are not. Every dict and list in it is new, the caller's to edit."""
        pending = None
        if self.pending is not None:
            proposer, offer = self.pending
            pending = {"from": proposer, "give": bundle_dict(offer.give), "get": bundle_dict(offer.get)}
        return {
            "player": player,
            "turn": self.turn,
            "max_turns": self.max_turns,
            "resources": RESOURCES,
            "inventory": named(self.inventories[player]),
            "values": named(VALUES[player]),
            "opponent_inventory": named(self.inventories[1 - player]),
            "pending_offer": pending,
            "trades": [_trade_dict(t, name=False) for t in self.trades],
            "messages": list(self.messages),
        }

    def score(self) -> dict[str, Any]:
        (n0, n1), (i0, i1) = PLAYER_NAMES, self.inventories
        return {
            "inventories": {n0: named(i0), n1: named(i1)},
            "values": {n0: named(VALUES[0]), n1: named(VALUES[1])},
            "value_gain": {n0: self.gain(0), n1: self.gain(1)},
            "trades": [_trade_dict(t, name=True) for t in self.trades],
        }


def _add(inventory: Bundle, plus: Bundle, minus: Bundle) -> Bundle:
    return tuple(have + p - m for have, p, m in zip(inventory, plus, minus, strict=True))


def _check_offer(offer: Offer, mine: Bundle, theirs: Bundle) -> None:
    """Shape, then both sides payable: inventories are public, and an offer the opponent cannot pay could
    never be accepted, so asking for more than it holds is refused like offering more than one holds."""
    n = len(RESOURCES)
    give, get = offer.give, offer.get
    for side in (give, get):
        if not (isinstance(side, tuple) and len(side) == n and all(type(q) is int and q >= 0 for q in side)):
            raise InvalidMove(f"an offer side must be {n} counts >= 0, one per resource; got {side!r:.100}")
    if not any(give) or not any(get):
        raise InvalidMove("an offer must give something and ask for something, e.g. [Offer: 3 Wood -> 2 Gold]")
    for i in range(n):
        if give[i] and get[i]:
            raise InvalidMove(f"{RESOURCES[i]} is on both sides of the offer; name each resource on one side only")
    if not covers(mine, offer.give):
        raise InvalidMove(f"you cannot offer {bundle_text(offer.give)}: you hold {bundle_text(mine)}")
    if not covers(theirs, offer.get):
        raise InvalidMove(f"you cannot ask for {bundle_text(offer.get)}: your opponent holds {bundle_text(theirs)}")


def _trade_dict(trade: Trade, name: bool) -> dict[str, Any]:
    proposer: int | str = PLAYER_NAMES[trade.proposer] if name else trade.proposer
    acceptor: int | str = PLAYER_NAMES[1 - trade.proposer] if name else 1 - trade.proposer
    return {
        "turn": trade.turn,
        "proposer": proposer,
        "acceptor": acceptor,
        "proposer_gave": bundle_dict(trade.give),
        "proposer_got": bundle_dict(trade.get),
    }


# -- text layer ----------------------------------------------------------------------------------------------


class SimpleNegotiation(TextGame[Action]):
    default_history = "full"
    chance = False

    def __init__(self, max_turns: int = 10) -> None:
        if isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1:
            raise ValueError(f"max_turns must be an int >= 1 (turns of both players together), got {max_turns!r}")
        self.max_turns = max_turns
        self._history: tuple[NegotiationState | None, int, str] = (None, 0, "")
        """The state whose message history was rendered last, its number of moves then, and the text: a state's
        moves only grow, so the next turn renders only the moves since (rendering all of them every turn costs
        a fifth of a 10-turn game)."""

    def new_state(self, rng: random.Random) -> NegotiationState:
        return NegotiationState(self.max_turns)

    def rules(self, player: int) -> str:
        return rules_text(self.max_turns, player, VALUES[player])

    def describe(self, state: NegotiationState, player: int, full_history: bool) -> str:
        moves = state.moves
        history = ""
        if full_history:
            if moves:
                history = f"Messages and trades so far:\n{self._history_text(state)}"
        elif moves and moves[-1].player != player:
            history = "\n".join(["Your opponent's last move:", *_move_lines(moves[-1])])
        position = _position_text(
            state.turn, state.max_turns, state.inventories[player], state.inventories[1 - player], VALUES[player]
        )
        pending = state.pending
        if pending is None or state.is_terminal():
            offer = "No offer is pending."
        else:
            proposer, offer_made = pending
            offer = _offer_text(player, proposer, offer_made.give, offer_made.get)
        return f"{history}\n{position}\n{offer}" if history else f"{position}\n{offer}"

    def _history_text(self, state: NegotiationState) -> str:
        """Every move's lines (`_move_lines`), rendered once per move while one state is asked about in turn."""
        seen, count, text = self._history
        if seen is not state:
            count, text = 0, ""
        lines = [line for move in state.moves[count:] for line in _move_lines(move)]
        text = "\n".join([text, *lines] if text else lines)
        self._history = (state, len(state.moves), text)
        return text

    def format_action(self, action: Action) -> str:
        """The canonical token, as legal moves are listed; talk has none, so it is its message.

        What was said around a token is kept in the rules history and shown in the prompts, not here.
        """
        return action.text

    def format_legal_actions(self, state: NegotiationState) -> tuple[str, ...]:
        return state.legal_table()[1] if not state.is_terminal() else ()

    def legal_moves_text(self, state: NegotiationState, legal: Sequence[str]) -> str:
        """The offer grammar with its bounds, not the ~200 offers one by one (they stay in `infos`)."""
        player = state.current_player()
        return _grammar_text(
            state.inventories[player], state.inventories[1 - player], state.offer_to(player) is not None
        )

    def parse_action(self, move: str, state: NegotiationState) -> Action:
        """Read the move (see `read_move`) and check it is legal now; never raises anything but InvalidMove."""
        exact = state.legal_table()[2].get(move) if not state.is_terminal() else None
        if exact is not None:  # a listed move, written as listed
            return exact
        action = read_move(move)
        state.check(action)
        return action

    def figures(self, score: dict[str, Any], player: int) -> dict[str, float]:
        """`value_gain`: the player's gain in inventory value; `deal_rate`: 1 if any trade was made."""
        return {"value_gain": score["value_gain"][PLAYER_NAMES[player]], "deal_rate": float(bool(score["trades"]))}

    def outcome_text(self, state: NegotiationState) -> str:
        if not state.trades:
            return f"no trade was made in {state.max_turns} turns, so neither value changed: a draw"
        gains = [state.gain(0), state.gain(1)]
        growth = "; ".join(
            f"player_{p}'s value went {START_VALUES[p]} -> {state.value(p)} ({gains[p]:+d})" for p in (0, 1)
        )
        winner = state.winner()
        if winner is None:
            return f"{growth}: equal growth, a draw"
        return f"{growth}: player_{winner}'s value grew more"

    def render(self, state: NegotiationState) -> str:
        lines = [f"Turn {min(state.turn, state.max_turns)}/{state.max_turns}"]
        for p in (0, 1):
            values = ", ".join(f"{name} {v}" for name, v in zip(RESOURCES, VALUES[p], strict=True))
            lines.append(
                f"Player {p}: {bundle_text(state.inventories[p])} (values {values}; "
                f"value {state.value(p)}, {state.gain(p):+d})"
            )
        if state.pending is not None:
            lines.append(f"Pending from Player {state.pending[0]}: {state.pending[1].text}")
        return "\n".join(lines)


@functools.lru_cache(maxsize=256)
def rules_text(max_turns: int, player: int, values: Bundle) -> str:
    """The rules as `player`, with its `values`, reads them: built once per game length and role, as a fresh
    env per game is common."""
    lines = [
        f"You are Player {player} in the Negotiation Game.",
        "You have some resources, and your task is to trade such that the total value of your resources increases.",
        "The resources and associated values you currently have are:",
        *(
            f"\t+ [{name}]".ljust(12) + f"Qty: {qty}".ljust(10) + f"Value: {value}"
            for name, qty, value in zip(RESOURCES, START, values, strict=True)
        ),
        "Your opponent starts with the same resources but values them differently; neither of you sees "
        "the other's values.",
        "At each turn, you can talk to your opponent or make a trade offer.",
        "Use the following special tokens for actions:",
        "  - [Offer]: To make a trade offer.",
        "    Format: [Offer: Offered Resources -> Requested Resources]",
        "    Example: [Offer: 3 Wood -> 2 Gold]",
        "  - [Accept]: To accept an incoming offer.",
        "  - [Deny]: To deny an incoming offer (default).",
        "You can include additional text before and/or after these tokens.",
        "An offer stands until your opponent's next turn: anything but [Accept] denies it. An offer may only "
        "give resources you hold and ask for resources your opponent holds (both inventories are public).",
        f"The game lasts for {max_turns} turns in total.",
        "When it ends, the player whose total value (by their own values) grew more wins; equal growth is a draw.",
        "Your move is your message to your opponent, with at most one action token in brackets; a message "
        "without one just talks (a message that is nothing but a token, brackets left off, is that token). "
        "Put the whole move in \\boxed{}, talk included, e.g. \\boxed{I need Gold. [Offer: 3 Wood -> 2 Gold]}: "
        "an answer without a box is read as its last bracketed token alone, and talk outside a box is no move, "
        f"an invalid move, as is a message of more than {MAX_MESSAGE_CHARS} characters. The list of "
        "legal moves shows the offers of one resource for another, and [Accept] and [Deny] when an offer "
        "to you is pending; talking is always allowed too.",
    ]
    return "\n".join(lines)


@functools.lru_cache(maxsize=4096)
def _position_text(turn: int, max_turns: int, mine: Bundle, theirs: Bundle, values: Bundle) -> str:
    """The turn, and both inventories as the player holding `mine` sees them with its `values`; cached, as
    few such positions occur (inventories only change on a trade)."""
    if turn >= max_turns:
        when = f"The game is over after {max_turns} turns."
    else:
        when = f"Turn {turn + 1} of {max_turns}: {max_turns - turn} turn(s) left, this one included."
    worth = ", ".join(f"{n} {name} (worth {v} each)" for name, n, v in zip(RESOURCES, mine, values, strict=True))
    start, value = value_at(START, values), value_at(mine, values)
    return (
        f"{when}\n"
        f"Your resources: {worth}; total value {value} (at the start {start}, change {value - start:+d}).\n"
        f"Your opponent's resources: {bundle_text(theirs)}."
    )


@functools.lru_cache(maxsize=4096)
def _offer_text(player: int, proposer: int, give: Bundle, get: Bundle) -> str:
    """The standing offer (mid-game) as `player` sees it: made to it, or made by it."""
    if proposer == player:
        return f"Your offer awaits Player {1 - player}'s answer: {offer_token(give, get)}."
    return (
        f"Pending offer from Player {proposer}: they give you {bundle_text(give)} for "
        f"{bundle_text(get)} of yours. Answer [Accept] or [Deny]; any other move denies it."
    )


@functools.lru_cache(maxsize=4096)
def _grammar_text(mine: Bundle, theirs: Bundle, answerable: bool) -> str:
    moves = ["[Accept]", "[Deny]"] if answerable else []
    for g, have in enumerate(mine):
        for r, stock in enumerate(theirs):
            if g != r and have and stock:
                moves.append(f"[Offer: n {RESOURCES[g]} -> m {RESOURCES[r]}] with 1 <= n <= {have}, 1 <= m <= {stock}")
    moves.append("or talk only (a message without an action token)")
    return "; ".join(moves)


def _move_lines(record: MoveRecord) -> list[str]:
    """What everyone saw of a move: the message, then what it did ("Player 1 accepted: ...")."""
    p, action, answered = record.player, record.action, record.answered
    lines = [f"Player {p} said: {action.message or action.text}"]
    if answered is not None:
        if isinstance(action, Accept):
            given = bundle_text(answered.give)
            lines.append(f"Player {p} accepted: Player {1 - p} gave {given} for {bundle_text(answered.get)}.")
        elif isinstance(action, Deny):
            lines.append(f"Player {p} denied the offer.")
        elif isinstance(action, Offer):
            lines.append(f"Player {p} made a counter-offer, which denies the offer.")
        else:
            lines.append(f"Player {p} did not accept the offer, so it is denied.")
    if isinstance(action, Offer):
        lines.append(_offers_line(p, action.give, action.get))
    return lines


@functools.lru_cache(maxsize=4096)  # keys: 2 players * 800 offers of one resource for another, in this game
def _offers_line(player: int, give: Bundle, get: Bundle) -> str:
    """The history line of an offer made: most moves are offers, and the same ones recur across games."""
    return f"Player {player} offers {bundle_text(give)} for {bundle_text(get)} of Player {1 - player}."


# -- strong agent --------------------------------------------------------------------------------------------


class NegotiationHeuristicAgent:
    """Trades only when it both gains value and comes out ahead; plays from `info["view"]` only.

    Gaining value is not enough to win: the player whose value grows more wins, and a trade that helps both
    (player_0's 3 Wood for 2 Gold: +15 to it, +35 to player_1) loses. The opponent's values are hidden, so
    the agent guesses them as its own in reverse (the opponent prizes what it prizes least, the usual reason
    a trade makes sense; in this game the guess is exact). It accepts an offer iff it gains value and its
    gain beats the guessed gain of the opponent. Otherwise it counter-offers: of the single-resource offers
    it can pay, it picks one the opponent would still gain from (so a value-seeking opponent accepts) that
    beats the opponent by the widest guessed margin, e.g. player_0's 4 Wood for 10 Gold (+130 vs +10). With
    no such offer it denies, or just talks.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)

    def __call__(self, observation: str, info: dict[str, Any]) -> str:
        view = info["view"]
        me = view["player"]
        names = list(view["resources"])
        own = [view["values"][r] for r in names]
        guess = _reversed_ranking(own)
        mine = [view["inventory"][r] for r in names]
        theirs = [view["opponent_inventory"][r] for r in names]
        pending = view["pending_offer"]
        if pending is not None and pending["from"] != me:
            gets = [pending["give"].get(r, 0) for r in names]
            pays = [pending["get"].get(r, 0) for r in names]
            gain, their_gain = _gains(gets, pays, own, guess)
            if gain > 0 and gain > their_gain:
                return boxed("That works for me. [Accept]")
        best = self._best_offer(mine, theirs, own, guess)
        if best is not None:
            give, get = best
            return boxed(f"Here is a deal that helps us both. {offer_token(give, get)}")
        if pending is not None and pending["from"] != me:
            return boxed("No, thank you. [Deny]")
        return boxed("I have nothing to offer right now.")

    def _best_offer(
        self, mine: list[int], theirs: list[int], own: list[int], guess: list[int]
    ) -> tuple[Bundle, Bundle] | None:
        """Among offers of n of resource g for m of resource r, those with the widest winning margin."""
        best: list[tuple[Bundle, Bundle]] = []
        best_margin = 0
        for g, have in enumerate(mine):
            for r, stock in enumerate(theirs):
                if g == r:
                    continue
                for n in range(1, have + 1):
                    for m in range(1, stock + 1):
                        gain = own[r] * m - own[g] * n
                        their_gain = guess[g] * n - guess[r] * m
                        margin = gain - their_gain
                        if their_gain <= 0 or gain <= 0 or margin < best_margin:
                            continue
                        if margin > best_margin:
                            best, best_margin = [], margin
                        best.append((_unit(g, n), _unit(r, m)))
        return self.rng.choice(best) if best else None


def _reversed_ranking(values: list[int]) -> list[int]:
    """The guessed opponent values: the resource we value most gets our lowest value, and so on."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranked = sorted(values, reverse=True)
    guess = [0] * len(values)
    for rank, i in enumerate(order):
        guess[i] = ranked[rank]
    return guess


def _gains(gets: Sequence[int], pays: Sequence[int], own: list[int], guess: list[int]) -> tuple[int, int]:
    """(our gain, the opponent's guessed gain) if we receive `gets` and hand over `pays`."""
    ours = sum(v * (a - b) for v, a, b in zip(own, gets, pays, strict=True))
    their = sum(v * (b - a) for v, a, b in zip(guess, gets, pays, strict=True))
    return ours, their
