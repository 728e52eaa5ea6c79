"""KuhnPoker-v1: three-card poker over several rounds, as in the SPIRAL paper, with the betting counted right.

Each round both players ante 1 chip and get one card of J < Q < K; one betting round follows ([check], [bet],
[call], [fold]), where a bet and a call each put 1 more chip in the pot. The first to act alternates by round
(player_0 in round 1). Chips are net winnings. Two scorings: "match" (the default, as in the paper) gives
+1/-1 to the chip leader after the last round and 0/0 on equal chips; "chips" returns the net chips themselves,
the classic game in which the first to act expects -1/18 chip a round. `spiral_envs.games.kuhn_theory` solves
both exactly.

This is `-v1` because TextArena's KuhnPoker (which SPIRAL trains on) has three bugs we do not copy: a bet or
a call never reaches the pot (every hand is worth 1 chip, so betting means nothing), the game goes to whoever
won the last hand rather than to the chip leader, and cards come from the global `random` module (seeds do
not fix the deal). The paper shows the full history for this game, which is the default here.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any, NamedTuple

from spiral_envs.agents import boxed
from spiral_envs.core import (
    TERMINAL,
    GameState,
    InvalidMove,
    TextGame,
    normalize_move,
    player_name,
    zero_sum_returns,
)

CARDS = ("J", "Q", "K")
RANK = {card: rank for rank, card in enumerate(CARDS)}
OPEN = ("check", "bet")
FACING_BET = ("call", "fold")
PAST_TENSE = {"check": "checked", "bet": "bet", "call": "called", "fold": "folded"}
SCORINGS = ("match", "chips")
"""How a finished game is scored: +1/-1/0 to the chip leader ("match"), or the net chips ("chips")."""


class RoundResult(NamedTuple):
    """A finished round as the rules know it: both cards, even when nobody saw them."""

    round: int
    starter: int
    cards: tuple[str, str]
    actions: tuple[str, ...]
    winner: int
    won: int
    showdown: bool


class PastRound(NamedTuple):
    """A finished round as one player knows it: the opponent's card only if it was shown at a showdown."""

    round: int
    starter: int
    actions: tuple[str, ...]
    your_card: str
    opponent_card: str | None
    winner: int
    won: int
    showdown: bool


ACTION_TEXT = {action: f"[{action}]" for action in (*OPEN, *FACING_BET)}
ACTION_OF_TEXT = {text: action for action, text in ACTION_TEXT.items()}
LEGAL_TEXT = {(): (), OPEN: tuple(map(ACTION_TEXT.get, OPEN)), FACING_BET: tuple(map(ACTION_TEXT.get, FACING_BET))}
"""The texts of each set of legal actions `KuhnPokerState.legal_actions` returns."""


def action_text(action: str) -> str:
    """The written form of a move, shared by the text layer and the scripted agent."""
    return ACTION_TEXT[action]


def actor(starter: int, index: int) -> int:
    """Who made the `index`-th move of a round: players alternate from the starter."""
    return starter if index % 2 == 0 else 1 - starter


class KuhnPokerState(GameState[str]):
    """Chips, the current round (cards, betting, pot) and the finished rounds; actions are "check" etc.

    `returns()` follows `scoring` (see `SCORINGS`): under "chips" it is the net chips, so it can exceed 1.
    """

    def __init__(self, rng: random.Random, num_rounds: int, scoring: str = "match") -> None:
        self.rng = rng
        self.num_rounds = num_rounds
        self.scoring = check_scoring(scoring)
        self.chips = [0, 0]
        self.results: list[RoundResult] = []
        self.known_rounds: list[tuple[PastRound, ...]] = [(), ()]
        """Finished rounds as each player knows them, built once per round since every turn's view needs them
        (tuples, so every view shares them)."""
        self._deal(1)

    def _deal(self, round_number: int) -> None:
        self.round = round_number
        self.starter = (round_number - 1) % 2
        first, second = self.rng.sample(CARDS, 2)
        self.cards: tuple[str, str] = (first, second)
        self.betting: tuple[str, ...] = ()
        self.put_in = [1, 1]
        self.pot = 2
        self._player = self.starter

    def current_player(self) -> int:
        return self._player

    def is_terminal(self) -> bool:
        return self._player == TERMINAL

    def legal_actions(self) -> tuple[str, ...]:
        if self._player == TERMINAL:
            return ()
        betting = self.betting
        return FACING_BET if betting and betting[-1] == "bet" else OPEN

    def apply_action(self, action: str) -> None:
        player = self._player
        if player == TERMINAL:
            raise InvalidMove("the game is over")
        legal = self.legal_actions()
        if action not in legal:
            raise InvalidMove(f"{action!r} is not allowed now; the legal actions are {', '.join(legal)}")
        self.betting = betting = (*self.betting, action)
        if action == "bet" or action == "call":
            self.put_in[player] += 1
            self.pot += 1
        if action == "fold":
            self._end_round(1 - player, showdown=False)
        elif action == "call" or (action == "check" and len(betting) == 2):
            higher = 0 if RANK[self.cards[0]] > RANK[self.cards[1]] else 1
            self._end_round(higher, showdown=True)
        else:
            self._player = 1 - player

    def _end_round(self, winner: int, showdown: bool) -> None:
        """Move the pot: the winner's net gain is what the loser put in (ante plus a bet or a call)."""
        loser = 1 - winner
        won = self.put_in[loser]
        self.chips[winner] += won
        self.chips[loser] -= won
        number, starter, actions, cards, known = self.round, self.starter, self.betting, self.cards, self.known_rounds
        self.results.append(RoundResult(number, starter, cards, actions, winner, won, showdown))
        first, second = cards
        shown_first, shown_second = (first, second) if showdown else (None, None)
        known[0] = (*known[0], PastRound(number, starter, actions, first, shown_second, winner, won, showdown))
        known[1] = (*known[1], PastRound(number, starter, actions, second, shown_first, winner, won, showdown))
        if self.round == self.num_rounds:
            self._player = TERMINAL
        else:
            self._deal(self.round + 1)

    def winner(self) -> int | None:
        """The chip leader, or None on equal chips (whoever won the last hand does not matter)."""
        if self.chips[0] == self.chips[1]:
            return None
        return 0 if self.chips[0] > self.chips[1] else 1

    def returns(self) -> tuple[float, float]:
        if self.scoring == "chips":
            return (float(self.chips[0]), float(self.chips[1]))
        return zero_sum_returns(self.winner())

    def player_view(self, player: int) -> dict[str, Any]:
        return {
            "player": player,
            "card": self.cards[player],
            "chips": (self.chips[0], self.chips[1]),
            "round": self.round,
            "num_rounds": self.num_rounds,
            "scoring": self.scoring,
            "starts": self.starter == player,
            "betting": self.betting,
            "pot": self.pot,
            "past_rounds": self.known_rounds[player],
        }

    def score(self) -> dict[str, Any]:
        chips = {player_name(0): self.chips[0], player_name(1): self.chips[1]}
        return {"chips": chips, "round": self.round, "num_rounds": self.num_rounds}


def check_scoring(scoring: str) -> str:
    """`scoring` itself if it is one of `SCORINGS`, else a ValueError naming the allowed values."""
    if scoring not in SCORINGS:
        raise ValueError(f"scoring={scoring!r} is not a scoring; use one of {list(SCORINGS)}")
    return scoring


def signed(chips: int) -> str:
    return f"{chips:+d}" if chips else "0"


def plural(chips: int) -> str:
    return "1 chip" if chips == 1 else f"{chips} chips"


def betting_text(starter: int, actions: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"Player {actor(starter, i)} {PAST_TENSE[a]}" for i, a in enumerate(actions))


def chips_text(chips_0: int, chips_1: int) -> str:
    return f"Player 0: {signed(chips_0)}, Player 1: {signed(chips_1)}"


@functools.lru_cache(maxsize=4096)
def position_text(
    round_number: int,
    num_rounds: int,
    player: int,
    card: str,
    pot: int,
    chips_0: int,
    chips_1: int,
    starter: int,
    betting: tuple[str, ...],
) -> str:
    """The current round as `player` sees it; cached, as the same positions recur game after game."""
    chips = chips_text(chips_0, chips_1)
    moves = f"{betting_text(starter, betting)}." if betting else f"Player {starter} acts first; no moves yet."
    return (
        f"Round {round_number} of {num_rounds}. You are Player {player}.\n"
        f"Your card: {card}. Pot: {plural(pot)}. Chips: {chips}.\n"
        f"This round: {moves}"
    )


@functools.lru_cache(maxsize=4096)
def round_text(result: PastRound, player: int) -> str:
    """One finished round as `player` saw it: at a fold no card is shown, so only the player's own is named.

    Cached because every later observation repeats it, and there are only a few hundred distinct rounds.
    """
    moves = betting_text(result.starter, result.actions)
    won = f"Player {result.winner} won {plural(result.won)}"
    if result.showdown:
        cards = (result.your_card, result.opponent_card) if player == 0 else (result.opponent_card, result.your_card)
        return f"Round {result.round}: {moves}; showdown: Player 0 had {cards[0]}, Player 1 had {cards[1]}; {won}."
    return f"Round {result.round}: {moves}; {won} without a showdown (your card was {result.your_card})."


class KuhnPoker(TextGame[str]):
    default_history = "full"

    def __init__(self, num_rounds: int = 5, scoring: str = "match") -> None:
        if isinstance(num_rounds, bool) or not isinstance(num_rounds, int):
            raise TypeError(f"num_rounds must be an int >= 1 (rounds per game), got {num_rounds!r}")
        if num_rounds < 1:
            raise ValueError(f"num_rounds must be >= 1 (rounds per game), got {num_rounds}")
        self.num_rounds = num_rounds
        self.scoring = check_scoring(scoring)
        self.worst_legal_return = -1.0 if self.scoring == "match" else -2.0 * num_rounds
        """Losing the match, or the most chips a game can lose (2 a round: a called bet lost at showdown); the
        invalid-move penalty unless the env is given one (which may not be above it)."""

    def new_state(self, rng: random.Random) -> KuhnPokerState:
        return KuhnPokerState(rng, self.num_rounds, self.scoring)

    def rules(self, player: int) -> str:
        n = self.num_rounds
        order = (
            "Player 0 acts first in round 1, and the first to act alternates each round."
            if n > 1
            else "Player 0 acts first."
        )
        outcome = (
            "After the last round the player with more chips wins the game; equal chips is a draw."
            if self.scoring == "match"
            else "Your score for the game is your net chips after the last round."
        )
        return (
            f"You are Player {player} in Kuhn Poker, a two-player card game of {n} round{'s' if n > 1 else ''}.\n"
            "The deck has three cards, ranked J < Q < K. Each round both players ante 1 chip (the pot starts at "
            "2 chips) and each is dealt one card that the other cannot see. Then one betting round follows; "
            f"{order}\n"
            "Moves: [check] passes without betting and [bet] puts 1 more chip in the pot (both only when no bet "
            "is pending); facing a bet, [call] puts 1 chip in the pot to match it and [fold] gives up the round, "
            "leaving the pot to your opponent. If both players check, or a bet is called, the cards are shown "
            "and the higher card takes the pot.\n"
            f"Your chips are your net winnings, starting at 0. {outcome}\n"
            "Write your move in square brackets, e.g. [check]."
        )

    def describe(self, state: KuhnPokerState, player: int, full_history: bool) -> str:
        past = state.known_rounds[player]
        terminal = state.is_terminal()
        if terminal:
            now = f"All {state.num_rounds} rounds are over. Final chips: {chips_text(*state.chips)}."
        else:
            now = position_text(
                state.round,
                state.num_rounds,
                player,
                state.cards[player],
                state.pot,
                *state.chips,
                state.starter,
                state.betting,
            )
        if full_history and past:
            rounds = "\n".join([round_text(r, player) for r in past])
            return f"Previous rounds:\n{rounds}\n{now}"
        if terminal:
            return f"{round_text(past[-1], player)}\n{now}"
        return now

    def format_action(self, action: str) -> str:
        return action_text(action)

    def format_legal_actions(self, state: KuhnPokerState) -> tuple[str, ...]:
        return LEGAL_TEXT[state.legal_actions()]

    def parse_action(self, move: str, state: KuhnPokerState) -> str:
        """A move's normalized text is the action itself; the general path only words the error."""
        exact = ACTION_OF_TEXT.get(move)  # written as listed, e.g. "[bet]"
        if exact is not None and exact in state.legal_actions():
            return exact
        wanted = normalize_move(move)
        if wanted in state.legal_actions():
            return wanted
        return super().parse_action(move, state)

    def figures(self, score: dict[str, Any], player: int) -> dict[str, float]:
        """`chips_per_round`: the player's chips over the rounds played."""
        return {"chips_per_round": score["chips"][player_name(player)] / score["round"]}

    def outcome_text(self, state: KuhnPokerState) -> str:
        winner = state.winner()
        rounds = f"{state.num_rounds} round{'s' if state.num_rounds > 1 else ''}"
        if winner is None:
            return f"both players have {state.chips[0]} chips after {rounds}: a draw"
        return (
            f"{player_name(winner)} has more chips after {rounds} "
            f"({signed(state.chips[winner])} to {signed(state.chips[1 - winner])})"
        )

    def render(self, state: KuhnPokerState) -> str:
        """Both hands, for logs: unlike `describe`, this shows what neither player may see."""
        lines = [
            f"Round {r.round}: cards {r.cards[0]} vs {r.cards[1]}; {betting_text(r.starter, r.actions)}; "
            f"Player {r.winner} won {plural(r.won)}."
            for r in state.results
        ]
        if not state.is_terminal():
            moves = betting_text(state.starter, state.betting) or "no moves yet"
            lines.append(f"Round {state.round}: cards {state.cards[0]} vs {state.cards[1]}; pot {state.pot}; {moves}.")
        lines.append(f"Chips: Player 0: {signed(state.chips[0])}, Player 1: {signed(state.chips[1])}.")
        return "\n".join(lines)


def sample_answer(policy: Mapping[str, Fraction | float], rng: random.Random) -> str:
    """The boxed answer of an action drawn from `policy` (action -> probability, in the rules' order)."""
    draw = rng.random()
    chosen = None
    cumulative = 0.0
    for action, p in policy.items():
        if p:
            chosen = action
            cumulative += float(p)
            if draw < cumulative:
                break
    return boxed(action_text(chosen))  # type: ignore[arg-type]


MatchPolicy = Callable[[int, int, str, tuple[str, ...]], Mapping[str, Any]]
"""`(round, my_chips, card, betting) -> {action: probability}`; see `spiral_envs.games.kuhn_theory`."""


def policy_in_view(policy: MatchPolicy, view: dict[str, Any]) -> Mapping[str, Any]:
    """What a match policy plays for the player whose view this is."""
    my_chips = view["chips"][view["player"]]
    return policy(view["round"], my_chips, view["card"], tuple(view["betting"]))


class KuhnPokerPolicyAgent:
    """Plays any match policy, e.g. a best response from `kuhn_theory.best_response` to exploit a measured one."""

    def __init__(self, policy: MatchPolicy, seed: int | None = None) -> None:
        self.match_policy = policy
        self.rng = random.Random(seed)

    def policy(self, view: dict[str, Any]) -> Mapping[str, Any]:
        """The probability of each legal action for the player whose view this is."""
        return policy_in_view(self.match_policy, view)

    def __call__(self, observation: str, info: dict[str, Any]) -> str:
        return sample_answer(self.policy(info["view"]), self.rng)
