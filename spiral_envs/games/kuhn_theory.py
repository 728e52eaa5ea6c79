"""Exact game theory of KuhnPoker-v1 as the env scores it: the match equilibrium, best responses, NashConv.

A game of several rounds is a sequence of one-round stage games linked by the chips: what a round is worth
depends on the chips after it, through the value of the rest of the game. Backward induction over (round,
chips of player_0) therefore solves the whole game: each stage's terminal payoffs are the continuation
values, and each stage is solved exactly as a matrix game over pure strategies.

Terms. In a round, an information state is `(card, betting)`, `betting` the round's moves so far: `()` and
`("check", "bet")` belong to the round's first to act (its starter, player (round - 1) % 2), `("check",)`
and `("bet",)` to the second. A round policy maps each of the 12 states to action probabilities; a match
policy is a callable `(round, my_chips, card, betting) -> {action: probability}`, `round` 1-based and
`my_chips` the net chips of the player to move before this round (which player that is follows from the round
and the parity of `len(betting)`). A probability may be a float or a Fraction.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from spiral_envs.games.kuhn_poker import (
    CARDS,
    FACING_BET,
    OPEN,
    RANK,
    MatchPolicy,
    check_scoring,
    policy_in_view,
    sample_answer,
)
from spiral_envs.matrix_game import solve_zero_sum

Betting = tuple[str, ...]
InfoState = tuple[str, Betting]
RoundPolicy = Mapping[InfoState, Mapping[str, float]]

STARTER_BETTINGS: tuple[Betting, ...] = ((), ("check", "bet"))
SECOND_BETTINGS: tuple[Betting, ...] = (("check",), ("bet",))
INFO_STATES: tuple[InfoState, ...] = tuple(
    (card, betting) for card in CARDS for betting in (*STARTER_BETTINGS, *SECOND_BETTINGS)
)
"""The 12 information states of a round."""


def legal_actions(betting: Betting) -> tuple[str, ...]:
    """The actions at a decision point, in the rules' order: facing a bet, call/fold; otherwise check/bet."""
    return FACING_BET if betting and betting[-1] == "bet" else OPEN


def mover(round_number: int, betting: Betting) -> int:
    """The player to move: the round's starter when an even number of moves were made, else the other one."""
    starter = (round_number - 1) % 2
    return starter if len(betting) % 2 == 0 else 1 - starter


def terminal_value(chips_0: int, scoring: str) -> float:
    """player_0's return from its final net chips: the sign under "match", the chips under "chips"."""
    if scoring == "chips":
        return float(chips_0)
    return float((chips_0 > 0) - (chips_0 < 0))


def chip_range(round_number: int) -> range:
    """player_0's possible chips before `round_number`: a round moves at most 2 chips."""
    reach = 2 * (round_number - 1)
    return range(-reach, reach + 1)


# -- policies -----------------------------------------------------------------------------------------------


class TablePolicy:
    """A match policy given as a table: `table[(round, chips of player_0)][(card, betting)] -> probabilities`.

    A state missing from the table (another seat's state in a best response's table, chips out of reach)
    raises KeyError. The returned mapping is a fresh dict, safe to change.
    """

    def __init__(self, table: Mapping[tuple[int, int], RoundPolicy]) -> None:
        self.table = table

    def __call__(self, round_number: int, my_chips: int, card: str, betting: Betting) -> dict[str, float]:
        chips_0 = my_chips if mover(round_number, betting) == 0 else -my_chips
        return dict(self.table[(round_number, chips_0)][(card, tuple(betting))])


def round_policy_as_match_policy(round_policy: RoundPolicy) -> MatchPolicy:
    """The match policy that plays `round_policy` in every round, whatever the chips.

    Checks that every one of the 12 states has a distribution over exactly its legal actions.
    """
    for card, betting in INFO_STATES:
        probabilities = round_policy[(card, betting)]
        if set(probabilities) != set(legal_actions(betting)):
            raise ValueError(f"state {(card, betting)}: actions {sorted(probabilities)} are not the legal ones")
        if any(p < 0 for p in probabilities.values()) or abs(float(sum(probabilities.values())) - 1) > 1e-9:
            raise ValueError(f"state {(card, betting)}: {dict(probabilities)} is not a probability distribution")

    def policy(round_number: int, my_chips: int, card: str, betting: Betting) -> dict[str, float]:
        return dict(round_policy[(card, tuple(betting))])

    return policy


def round_policy_at(policy: MatchPolicy, round_number: int, my_chips: int) -> dict[InfoState, dict[str, float]]:
    """What `policy` plays in `round_number` at all 12 states when the player to move has `my_chips`."""
    return {(card, betting): dict(policy(round_number, my_chips, card, betting)) for card, betting in INFO_STATES}


def uniform_round_policy() -> dict[InfoState, dict[str, float]]:
    """Each legal action with probability 1/2 at every state."""
    return {(card, betting): dict.fromkeys(legal_actions(betting), 0.5) for card, betting in INFO_STATES}


def deterministic_round_policy(choose: Callable[[str, Betting], str]) -> dict[InfoState, dict[str, float]]:
    """The round policy playing `choose(card, betting)` with probability 1."""
    return {
        (card, betting): {a: float(a == choose(card, betting)) for a in legal_actions(betting)}
        for card, betting in INFO_STATES
    }


# -- the stage game as a matrix game -----------------------------------------------------------------------

STARTER_OPTIONS = ("bet", "check-call", "check-fold")
"""The starter's reduced pure plans for one card; a pure strategy picks one per card (3**3 = 27)."""
SECOND_OPTIONS = tuple(itertools.product(OPEN, FACING_BET))
"""The second player's plans for one card: (move after a check, move facing a bet); 4**3 = 64 strategies."""
DEALS = tuple(itertools.permutations(CARDS, 2))
"""(starter's card, second's card), each with probability 1/6."""


def _starter_delta(plan: str, after_check: str, facing_bet: str, higher: int) -> int:
    """The starter's chip gain in one round; `higher` is +1 when the starter holds the higher card, else -1."""
    if plan == "bet":
        return 2 * higher if facing_bet == "call" else 1
    if after_check == "check":
        return higher
    return 2 * higher if plan == "check-call" else -1


STARTER_PLANS = np.array(list(itertools.product(range(3), repeat=3)))[:, ::-1]
"""STARTER_PLANS[i, c]: the index into STARTER_OPTIONS that pure strategy i plays with card CARDS[c]."""
SECOND_PLANS = np.array(list(itertools.product(range(4), repeat=3)))[:, ::-1]
"""SECOND_PLANS[j, c]: the index into SECOND_OPTIONS that pure strategy j plays with card CARDS[c]."""


def _stage_deltas() -> np.ndarray:
    """deltas[d, i, j]: the starter's chip gain in deal DEALS[d] when the players use pure strategies i, j."""
    table = np.array(
        [
            [[_starter_delta(plan, *second, higher) for higher in (-1, 1)] for second in SECOND_OPTIONS]
            for plan in STARTER_OPTIONS
        ]
    )  # [plan, second option, higher card (0: second's, 1: starter's)]
    deltas = []
    for first, second in DEALS:
        c, d = CARDS.index(first), CARDS.index(second)
        higher = int(RANK[first] > RANK[second])
        deltas.append(table[STARTER_PLANS[:, c][:, None], SECOND_PLANS[:, d][None, :], higher])
    return np.array(deltas)


STAGE_DELTAS = _stage_deltas()
DELTAS = (-2, -1, 1, 2)
"""A round's possible chip gains for its starter."""


def _stage_round_policy(x: np.ndarray, y: np.ndarray, worth: np.ndarray) -> dict[InfoState, dict[str, float]]:
    """The behaviour strategy of the stage's mixed strategies (x: starter's, y: second's), at all 12 states.

    `worth[gain + 2]` is the starter's continuation value. Facing a bet after a check with a card it never
    checks, the starter has no conditional; there it plays the better of call and fold against the cards
    that y bets after a check (all cards if y never does). Any action is optimal where one's own play never
    arrives; this one is also sensible.
    """
    policy: dict[InfoState, dict[str, float]] = {}
    bets_after_check = {}
    for c, card in enumerate(CARDS):
        plans = [float(y[SECOND_PLANS[:, c] == k].sum()) for k in range(len(SECOND_OPTIONS))]
        bet = sum(p for p, (after_check, _) in zip(plans, SECOND_OPTIONS) if after_check == "bet")
        call = sum(p for p, (_, facing_bet) in zip(plans, SECOND_OPTIONS) if facing_bet == "call")
        policy[(card, ("check",))] = {"check": 1 - bet, "bet": bet}
        policy[(card, ("bet",))] = {"call": call, "fold": 1 - call}
        bets_after_check[card] = bet
    for c, card in enumerate(CARDS):
        plans = [float(x[STARTER_PLANS[:, c] == k].sum()) for k in range(len(STARTER_OPTIONS))]
        checks = plans[1] + plans[2]
        policy[(card, ())] = {"check": checks, "bet": plans[0]}
        if checks > 1e-9:
            call = plans[1] / checks
        else:
            others = [o for o in CARDS if o != card]
            weights = [bets_after_check[o] for o in others]
            weights = weights if sum(weights) > 0 else [1.0] * len(others)
            calling = sum(w * worth[2 * (1 if RANK[card] > RANK[o] else -1) + 2] for w, o in zip(weights, others))
            call = float(calling > sum(weights) * worth[-1 + 2])
        policy[(card, ("check", "bet"))] = {"call": call, "fold": 1 - call}
    return {state: policy[state] for state in INFO_STATES}


@dataclass(frozen=True)
class MatchSolution:
    """The exact equilibrium of a match: player_0's value, and an equilibrium policy for both seats.

    `values[(round, chips_0)]` is player_0's value at the start of that round with player_0 on `chips_0`;
    `policy` is a `TablePolicy` over every (round, chips) a game can reach. Shared by a cache: do not mutate.
    """

    num_rounds: int
    scoring: str
    value: float
    values: Mapping[tuple[int, int], float]
    policy: TablePolicy


def _check_rounds(num_rounds: int) -> None:
    if isinstance(num_rounds, bool) or not isinstance(num_rounds, int) or num_rounds < 1:
        raise ValueError(f"num_rounds must be an int >= 1, got {num_rounds!r}")


@functools.lru_cache(maxsize=32)
def solve_match(num_rounds: int, scoring: str = "match") -> MatchSolution:
    """Solve the `num_rounds`-round match under `scoring` by backward induction over (round, chips)."""
    _check_rounds(num_rounds)
    check_scoring(scoring)
    after = {chips: terminal_value(chips, scoring) for chips in chip_range(num_rounds + 1)}
    values: dict[tuple[int, int], float] = {}
    table: dict[tuple[int, int], RoundPolicy] = {}
    for round_number in range(num_rounds, 0, -1):
        sign = 1 if (round_number - 1) % 2 == 0 else -1  # player_0's chips move by sign * the starter's gain
        before = {}
        for chips in chip_range(round_number):
            worth = np.zeros(5)  # the starter's continuation value, indexed by its gain + 2
            for delta in DELTAS:
                worth[delta + 2] = sign * after[chips + sign * delta]
            payoff = worth[STAGE_DELTAS + 2].mean(axis=0)
            x, y, value = solve_zero_sum(payoff)
            before[chips] = values[(round_number, chips)] = sign * value
            table[(round_number, chips)] = _stage_round_policy(x, y, worth)
        after = before
    return MatchSolution(num_rounds, scoring, after[0], values, TablePolicy(table))


# -- best responses and NashConv ---------------------------------------------------------------------------


def best_response(
    opponent: MatchPolicy, num_rounds: int, scoring: str = "match", seat: int = 0
) -> tuple[float, TablePolicy]:
    """The exact value a best responder in `seat` gets against `opponent` in the other seat, and its policy.

    The best response is deterministic and defined at every state of `seat` (where the opponent never lets
    the game arrive, it plays the better action against the opponent's cards taken as equally likely).
    Backward induction over (round, chips); each stage is a best response in the one-round game tree.
    """
    _check_rounds(num_rounds)
    check_scoring(scoring)
    if seat not in (0, 1):
        raise ValueError(f"seat must be 0 or 1, got {seat!r}")
    own = 1 if seat == 0 else -1  # the responder's return is own * player_0's
    after = {chips: own * terminal_value(chips, scoring) for chips in chip_range(num_rounds + 1)}
    table: dict[tuple[int, int], RoundPolicy] = {}
    for round_number in range(num_rounds, 0, -1):
        starter = (round_number - 1) % 2
        sign = 1 if starter == 0 else -1
        stage = _respond_as_starter if seat == starter else _respond_as_second
        before = {}
        for chips in chip_range(round_number):
            worth = {delta: after[chips + sign * delta] for delta in DELTAS}
            opponent_chips = -own * chips
            before[chips], table[(round_number, chips)] = stage(opponent, round_number, opponent_chips, worth)
        after = before
    return after[0], TablePolicy(table)


def _pure(action: str, betting: Betting) -> dict[str, float]:
    return {a: float(a == action) for a in legal_actions(betting)}


def _respond_as_starter(
    opponent: MatchPolicy, round_number: int, opponent_chips: int, worth: dict[int, float]
) -> tuple[float, RoundPolicy]:
    """Best first-to-act play in one round; `worth[gain]` is the responder's value after gaining `gain`."""
    calls = {c: float(opponent(round_number, opponent_chips, c, ("bet",))["call"]) for c in CARDS}
    bets = {c: float(opponent(round_number, opponent_chips, c, ("check",))["bet"]) for c in CARDS}
    total = 0.0
    policy: dict[InfoState, dict[str, float]] = {}
    for card in CARDS:
        bet = check = call = fold = call_if_reached = fold_if_reached = reach = 0.0
        for other in CARDS:
            if other == card:
                continue
            showdown = 1 if RANK[card] > RANK[other] else -1
            q, p = calls[other], bets[other]
            bet += q * worth[2 * showdown] + (1 - q) * worth[1]
            check += (1 - p) * worth[showdown]
            call, fold, reach = call + p * worth[2 * showdown], fold + p * worth[-1], reach + p
            call_if_reached, fold_if_reached = call_if_reached + worth[2 * showdown], fold_if_reached + worth[-1]
        calls_bet = call > fold if reach > 0 else call_if_reached > fold_if_reached
        check += call if calls_bet else fold
        policy[(card, ())] = _pure("bet" if bet > check else "check", ())
        policy[(card, ("check", "bet"))] = _pure("call" if calls_bet else "fold", ("check", "bet"))
        total += max(bet, check) / 6
    return total, policy


def _respond_as_second(
    opponent: MatchPolicy, round_number: int, opponent_chips: int, worth: dict[int, float]
) -> tuple[float, RoundPolicy]:
    """Best second-to-act play in one round; `worth[gain]` is the responder's value after the starter gains."""
    opens = {c: float(opponent(round_number, opponent_chips, c, ())["bet"]) for c in CARDS}
    calls = {c: float(opponent(round_number, opponent_chips, c, ("check", "bet"))["call"]) for c in CARDS}
    total = 0.0
    policy: dict[InfoState, dict[str, float]] = {}
    for card in CARDS:
        sums = dict.fromkeys(("check", "bet", "call", "fold"), 0.0)
        if_reached = dict.fromkeys(sums, 0.0)
        checked_to = bet_into = 0.0
        for other in CARDS:
            if other == card:
                continue
            showdown = 1 if RANK[other] > RANK[card] else -1  # the starter's gain at a showdown, per chip
            b, q = opens[other], calls[other]
            outcomes = {
                "check": worth[showdown],
                "bet": q * worth[2 * showdown] + (1 - q) * worth[-1],
                "call": worth[2 * showdown],
                "fold": worth[1],
            }
            for action, value in outcomes.items():
                reach = 1 - b if action in OPEN else b
                sums[action] += reach * value
                if_reached[action] += value
            checked_to, bet_into = checked_to + (1 - b), bet_into + b
        after_check = _better(sums if checked_to > 0 else if_reached, OPEN)
        facing_bet = _better(sums if bet_into > 0 else if_reached, FACING_BET)
        policy[(card, ("check",))] = _pure(after_check, ("check",))
        policy[(card, ("bet",))] = _pure(facing_bet, ("bet",))
        total += (sums[after_check] + sums[facing_bet]) / 6
    return total, policy


def _better(values: Mapping[str, float], actions: tuple[str, str]) -> str:
    """The action of higher value; the first one on a tie."""
    return actions[1] if values[actions[1]] > values[actions[0]] else actions[0]


def _stage_outcomes(
    first: MatchPolicy, second: MatchPolicy, round_number: int, mine: int, theirs: int
) -> tuple[dict[int, float], float]:
    """One round between a starter playing `first` on `mine` chips and a second player playing `second` on
    `theirs`: the probability of each of the starter's chip gains (`DELTAS`), and the expected number of
    decisions (2, plus the starter's answer to a bet after its check)."""
    gains = dict.fromkeys(DELTAS, 0.0)
    answers = 0.0
    for card, other in itertools.permutations(CARDS, 2):
        showdown = 1 if RANK[card] > RANK[other] else -1
        opens = float(first(round_number, mine, card, ())["bet"])
        calls = float(second(round_number, theirs, other, ("bet",))["call"])
        bets = float(second(round_number, theirs, other, ("check",))["bet"])
        calls_back = float(first(round_number, mine, card, ("check", "bet"))["call"])
        gains[2 * showdown] += (opens * calls + (1 - opens) * bets * calls_back) / 6
        gains[1] += opens * (1 - calls) / 6
        gains[showdown] += (1 - opens) * (1 - bets) / 6
        gains[-1] += (1 - opens) * bets * (1 - calls_back) / 6
        answers += (1 - opens) * bets / 6
    return gains, 2 + answers


def node_reach(policy_0: MatchPolicy, policy_1: MatchPolicy, num_rounds: int) -> dict[tuple[int, int], float]:
    """Where a game between `policy_0` (player_0) and `policy_1` (player_1) goes, exactly over the deals:
    `(round, chips of player_0 before it) -> the probability that the round is played there`, for every round of
    `num_rounds` and every chips of `chip_range(round)` (0 where no game arrives); each round's sum is 1."""
    return {node: reach for node, (reach, _) in _forward(policy_0, policy_1, num_rounds).items()}


def node_decisions(policy_0: MatchPolicy, policy_1: MatchPolicy, num_rounds: int) -> dict[tuple[int, int], float]:
    """Like `node_reach`, but the expected number of decisions taken at each node in a game (a round played
    there takes 2, or 3 when the starter answers a bet after its check)."""
    return {node: reach * decisions for node, (reach, decisions) in _forward(policy_0, policy_1, num_rounds).items()}


def _forward(
    policy_0: MatchPolicy, policy_1: MatchPolicy, num_rounds: int
) -> dict[tuple[int, int], tuple[float, float]]:
    """(round, chips_0) -> (reach probability, expected decisions in that round when it is played), by forward
    propagation of the chips' distribution through the rounds."""
    _check_rounds(num_rounds)
    nodes: dict[tuple[int, int], tuple[float, float]] = {}
    arriving = {0: 1.0}
    for round_number in range(1, num_rounds + 1):
        starter = (round_number - 1) % 2
        sign = 1 if starter == 0 else -1
        first, second = (policy_0, policy_1) if starter == 0 else (policy_1, policy_0)
        leaving = dict.fromkeys(chip_range(round_number + 1), 0.0)
        for chips in chip_range(round_number):
            p = arriving.get(chips, 0.0)
            if p == 0:
                nodes[(round_number, chips)] = (0.0, 0.0)
                continue
            gains, decisions = _stage_outcomes(first, second, round_number, sign * chips, -sign * chips)
            nodes[(round_number, chips)] = (p, decisions)
            for gain, q in gains.items():
                leaving[chips + sign * gain] += p * q
        arriving = leaving
    return nodes


def profile_value(policy_0: MatchPolicy, policy_1: MatchPolicy, num_rounds: int, scoring: str = "match") -> float:
    """player_0's exact expected return when player_0 plays `policy_0` and player_1 plays `policy_1`.

    Backward induction over (round, chips) like `best_response`, with both players' moves taken as given:
    against a fixed opponent, how far a policy falls short of the best response is
    `best_response(opponent, ...)[0]` minus this (with the signs of the seat).
    """
    _check_rounds(num_rounds)
    check_scoring(scoring)
    after = {chips: terminal_value(chips, scoring) for chips in chip_range(num_rounds + 1)}
    for round_number in range(num_rounds, 0, -1):
        starter = (round_number - 1) % 2
        sign = 1 if starter == 0 else -1
        first, second = (policy_0, policy_1) if starter == 0 else (policy_1, policy_0)
        before = {}
        for chips in chip_range(round_number):
            # the starter's and the second player's chips are sign * chips and -sign * chips
            gains, _ = _stage_outcomes(first, second, round_number, sign * chips, -sign * chips)
            before[chips] = sum(q * after[chips + sign * gain] for gain, q in gains.items())
        after = before
    return after[0]


def nash_conv(policy: MatchPolicy, num_rounds: int, scoring: str = "match") -> float:
    """What best responders gain against `policy` played in both seats: BR value in seat 0 plus in seat 1.

    Zero exactly for an equilibrium policy, positive otherwise (the game is zero-sum, so the two values of
    the game cancel).
    """
    return sum(best_response(policy, num_rounds, scoring, seat)[0] for seat in (0, 1))


def exploitability(policy: MatchPolicy, num_rounds: int, scoring: str = "match") -> float:
    """Half the NashConv: a best responder's average gain over the value, per seat."""
    return nash_conv(policy, num_rounds, scoring) / 2


class KuhnPokerMatchNashAgent:
    """The exact equilibrium of the whole match as the env scores it (`solve_match`), the game's registered expert.

    Unlike the one-round equilibrium played round by round, it knows that the rounds are linked by the chips:
    under match scoring only the chip leader after the last round wins, so each round is played for the match.
    No opponent expects more than the value of the game against it, in either seat. The equilibrium of each
    (num_rounds, scoring) is solved on its first move, in well under a second, and cached.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)

    def policy(self, view: dict[str, Any]) -> Mapping[str, Any]:
        """The equilibrium probability of each legal action for the player whose view this is."""
        return policy_in_view(solve_match(view["num_rounds"], view["scoring"]).policy, view)

    def __call__(self, observation: str, info: dict[str, Any]) -> str:
        return sample_answer(self.policy(info["view"]), self.rng)
