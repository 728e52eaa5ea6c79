"""kuhn_theory: the match equilibrium, best responses and NashConv, checked against the real rules.

The independent check is `expected_return` below: it plays `KuhnPokerState` itself, enumerating every deal
(each 1/6) and every move of both players' policies, so a solver bug in stage payoffs, chip bookkeeping or
seats cannot cancel out. Reference numbers come from an independent computation (stated per test).
"""

from __future__ import annotations

import copy
import itertools
import random
import time
from fractions import Fraction

import pytest
from game_helpers import KuhnPokerNashAgent

import spiral_envs
from spiral_envs import RandomAgent, boxed, make_agent
from spiral_envs.games import kuhn_poker
from spiral_envs.games.kuhn_poker import (
    KuhnPokerPolicyAgent,
    KuhnPokerState,
)
from spiral_envs.games.kuhn_theory import (
    INFO_STATES,
    KuhnPokerMatchNashAgent,
    best_response,
    chip_range,
    deterministic_round_policy,
    exploitability,
    nash_conv,
    node_decisions,
    node_reach,
    profile_value,
    round_policy_as_match_policy,
    round_policy_at,
    solve_match,
    uniform_round_policy,
)

DEALS = list(itertools.permutations("JQK", 2))


# -- the brute-force evaluator ------------------------------------------------------------------------------


class DealStream:
    """Stands in for the state's random stream: its next deal is `cards`, and it records that it dealt."""

    def __init__(self, cards: tuple[str, str]) -> None:
        self.cards = cards
        self.dealt = False

    def sample(self, population: tuple[str, ...], k: int) -> list[str]:
        assert tuple(population) == kuhn_poker.CARDS and k == 2 and not self.dealt
        self.dealt = True
        return list(self.cards)


def clone(state: KuhnPokerState, cards: tuple[str, str]) -> tuple[KuhnPokerState, DealStream]:
    """A copy of `state` whose next deal (if any) is `cards`."""
    stream = DealStream(cards)
    state.rng, saved = None, state.rng
    copied = copy.deepcopy(state)
    state.rng = saved
    copied.rng = stream
    return copied, stream


def node_value(state: KuhnPokerState, policies) -> float:
    """player_0's expected return from `state` with player p playing `policies[p]`."""
    if state.is_terminal():
        return state.returns()[0]
    player = state.current_player()
    view = state.player_view(player)
    probabilities = policies[player](view["round"], view["chips"][player], view["card"], view["betting"])
    assert set(probabilities) == set(state.legal_actions())
    total = 0.0
    for action, p in probabilities.items():
        if not p:
            continue
        child, stream = clone(state, DEALS[0])
        child.apply_action(action)
        if not stream.dealt:  # the round goes on, or the game ended
            total += float(p) * node_value(child, policies)
            continue
        branches = [node_value(child, policies)]
        for cards in DEALS[1:]:
            child, _ = clone(state, cards)
            child.apply_action(action)
            branches.append(node_value(child, policies))
        total += float(p) * sum(branches) / 6
    return total


def expected_return(policy_0, policy_1, num_rounds: int, scoring: str) -> float:
    """player_0's expected return, by enumerating the real game."""
    return (
        sum(node_value(KuhnPokerState(DealStream(cards), num_rounds, scoring), (policy_0, policy_1)) for cards in DEALS)
        / 6
    )


def visit_nodes(state: KuhnPokerState, policies, p: float, reach: dict, decisions: dict) -> None:
    """Add to `reach[(round, chips_0)]` the probability `p` of each round started at `state` and below it, and to
    `decisions[(round, chips_0)]` that of each decision taken there, by enumerating the real game."""
    if state.is_terminal():
        return
    player = state.current_player()
    view = state.player_view(player)
    node = (view["round"], view["chips"][0])
    assert view["chips"][1] == -view["chips"][0]
    if not view["betting"]:
        reach[node] = reach.get(node, 0.0) + p
    decisions[node] = decisions.get(node, 0.0) + p
    probabilities = policies[player](view["round"], view["chips"][player], view["card"], view["betting"])
    for action, q in probabilities.items():
        if not q:
            continue
        child, stream = clone(state, DEALS[0])
        child.apply_action(action)
        if not stream.dealt:
            visit_nodes(child, policies, p * float(q), reach, decisions)
            continue
        for cards in DEALS:
            child, _ = clone(state, cards)
            child.apply_action(action)
            visit_nodes(child, policies, p * float(q) / 6, reach, decisions)


# -- reference policies ---------------------------------------------------------------------------------------


def nash_round_policy(alpha) -> dict:
    """KuhnPokerNashAgent's one-round chip equilibrium as a round policy."""
    agent = KuhnPokerNashAgent(alpha=alpha)
    return {
        (card, betting): {
            a: float(p)
            for a, p in agent.policy({"card": card, "betting": betting, "starts": len(betting) % 2 == 0}).items()
        }
        for card, betting in INFO_STATES
    }


ALWAYS_BET = deterministic_round_policy(lambda card, betting: "call" if betting and betting[-1] == "bet" else "bet")


def random_match_policy(seed: int, deterministic: bool = False):
    """A policy that differs by round and chips (so chip bookkeeping matters), drawn once and fixed."""
    rng = random.Random(seed)
    table: dict = {}

    def policy(round_number, my_chips, card, betting):
        key = (round_number, my_chips, card, tuple(betting))
        if key not in table:
            actions = ("call", "fold") if betting and betting[-1] == "bet" else ("check", "bet")
            p = float(rng.random() < 0.5) if deterministic else rng.random()
            table[key] = {actions[0]: p, actions[1]: 1 - p}
        return table[key]

    return policy


def pure_strategies(seat_starts: bool):
    """All 64 pure strategies of one round for the starter or the second player."""
    bettings = [(), ("check", "bet")] if seat_starts else [("check",), ("bet",)]
    points = [(card, betting) for card in "JQK" for betting in bettings]
    for bits in range(2 ** len(points)):
        choice = {point: (bits >> i) & 1 for i, point in enumerate(points)}

        def policy(round_number, my_chips, card, betting, choice=choice):
            actions = ("call", "fold") if betting and betting[-1] == "bet" else ("check", "bet")
            picked = choice[(card, tuple(betting))]
            return {actions[0]: float(picked == 0), actions[1]: float(picked == 1)}

        yield policy


# -- the match equilibrium ------------------------------------------------------------------------------------


def test_match_value_of_five_rounds():
    """Independently computed: player_0 (who starts rounds 1, 3 and 5) expects about -0.0069 of a match win."""
    assert solve_match(5, "match").value == pytest.approx(-0.0069, abs=5e-5)


@pytest.mark.parametrize("num_rounds", [1, 2, 3, 4, 5])
def test_chips_value_is_minus_one_eighteenth_per_round_started(num_rounds):
    """Chips add up over rounds, so the value is the one-round value -1/18 for each round's starter."""
    starts = [(r - 1) % 2 for r in range(1, num_rounds + 1)]
    expected = (-starts.count(0) + starts.count(1)) / 18
    assert solve_match(num_rounds, "chips").value == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("num_rounds", "scoring"), [(1, "match"), (2, "match"), (3, "match"), (1, "chips"), (2, "chips")]
)
def test_equilibrium_value_equals_the_real_game_played_by_the_equilibrium(num_rounds, scoring):
    solution = solve_match(num_rounds, scoring)
    assert expected_return(solution.policy, solution.policy, num_rounds, scoring) == pytest.approx(
        solution.value, abs=1e-9
    )


@pytest.mark.parametrize(
    ("num_rounds", "scoring"), [(1, "match"), (3, "match"), (5, "match"), (1, "chips"), (5, "chips")]
)
def test_the_equilibrium_cannot_be_exploited(num_rounds, scoring):
    solution = solve_match(num_rounds, scoring)
    assert abs(nash_conv(solution.policy, num_rounds, scoring)) < 1e-9
    assert best_response(solution.policy, num_rounds, scoring, 0)[0] == pytest.approx(solution.value, abs=1e-9)
    assert best_response(solution.policy, num_rounds, scoring, 1)[0] == pytest.approx(-solution.value, abs=1e-9)


def test_equilibrium_policy_is_a_distribution_over_legal_actions_everywhere():
    solution = solve_match(5, "match")
    for (round_number, chips_0), round_policy in solution.policy.table.items():
        assert abs(chips_0) <= 2 * (round_number - 1)
        assert set(round_policy) == set(INFO_STATES)
        for (_, betting), probabilities in round_policy.items():
            assert list(probabilities) == (["call", "fold"] if betting and betting[-1] == "bet" else ["check", "bet"])
            assert min(probabilities.values()) >= -1e-12 and sum(probabilities.values()) == pytest.approx(1, abs=1e-12)
    assert len(solution.policy.table) == sum(4 * r - 3 for r in range(1, 6))


def test_solve_match_is_cached_and_fast():
    solve_match.cache_clear()
    start = time.perf_counter()
    solve_match(5, "match")
    assert time.perf_counter() - start < 1.0
    assert solve_match(5, "match") is solve_match(5, "match")
    with pytest.raises(ValueError, match="scoring"):
        solve_match(5, "win")
    with pytest.raises(ValueError, match="num_rounds"):
        solve_match(0, "match")


# -- best responses -------------------------------------------------------------------------------------------

OPPONENTS = {
    "uniform": round_policy_as_match_policy(uniform_round_policy()),
    "always bet": round_policy_as_match_policy(ALWAYS_BET),
    "nash 1/3": round_policy_as_match_policy(nash_round_policy(Fraction(1, 3))),
    "random mixed": random_match_policy(1),
    "random pure": random_match_policy(2, deterministic=True),
}


@pytest.mark.parametrize("scoring", ["match", "chips"])
@pytest.mark.parametrize("seat", [0, 1])
@pytest.mark.parametrize("name", list(OPPONENTS))
def test_best_response_value_is_what_its_policy_gets_in_the_real_game(name, seat, scoring):
    opponent = OPPONENTS[name]
    value, policy = best_response(opponent, 2, scoring, seat)
    players = (policy, opponent) if seat == 0 else (opponent, policy)
    own = 1 if seat == 0 else -1
    assert own * expected_return(*players, 2, scoring) == pytest.approx(value, abs=1e-9)
    for alternative in (*(random_match_policy(seed) for seed in range(10, 13)), solve_match(2, scoring).policy):
        players = (alternative, opponent) if seat == 0 else (opponent, alternative)
        assert own * expected_return(*players, 2, scoring) <= value + 1e-9


@pytest.mark.parametrize("scoring", ["match", "chips"])
@pytest.mark.parametrize(("first", "second"), [("random mixed", "random pure"), ("nash 1/3", "random mixed")])
def test_profile_value_is_the_real_game_played_by_both_policies(first, second, scoring):
    policies = (OPPONENTS[first], OPPONENTS[second])
    assert profile_value(*policies, 2, scoring) == pytest.approx(expected_return(*policies, 2, scoring), abs=1e-12)


def test_profile_value_of_the_equilibrium_is_the_value_and_a_best_response_gets_its_value():
    nash = round_policy_as_match_policy(nash_round_policy(Fraction(1, 3)))
    assert profile_value(nash, nash, 1, "chips") == pytest.approx(-1 / 18, abs=1e-15)
    solution = solve_match(5)
    assert profile_value(solution.policy, solution.policy, 5) == pytest.approx(solution.value, abs=1e-12)
    always = round_policy_as_match_policy(ALWAYS_BET)
    value, responder = best_response(always, 5, "match", seat=1)
    assert -profile_value(always, responder, 5) == pytest.approx(value, abs=1e-12)


@pytest.mark.parametrize(
    ("first", "second", "num_rounds"),
    [("equilibrium", "equilibrium", 3), ("random mixed", "random pure", 3), ("always bet", "uniform", 2)],
)
def test_node_reach_is_where_the_real_game_goes(first, second, num_rounds):
    """Exact over the deals: each (round, chips_0) is reached, and its decisions taken, as often as enumerating
    the real game says; each round's probabilities sum to 1."""
    policies = {**OPPONENTS, "equilibrium": solve_match(num_rounds, "match").policy}
    players = (policies[first], policies[second])
    reach: dict = {}
    decisions: dict = {}
    for cards in DEALS:
        visit_nodes(KuhnPokerState(DealStream(cards), num_rounds, "match"), players, 1 / 6, reach, decisions)
    exact = node_reach(*players, num_rounds)
    exact_decisions = node_decisions(*players, num_rounds)
    assert set(exact) == {(r, c) for r in range(1, num_rounds + 1) for c in chip_range(r)}
    for node in exact:
        assert exact[node] == pytest.approx(reach.get(node, 0.0), abs=1e-12), node
        assert exact_decisions[node] == pytest.approx(decisions.get(node, 0.0), abs=1e-12), node
    for r in range(1, num_rounds + 1):
        assert sum(p for (round_number, _), p in exact.items() if round_number == r) == pytest.approx(1, abs=1e-12)
    assert sum(p > 0 for p in exact.values()) > num_rounds  # the chips spread: more than one node a round


def test_three_round_best_response_against_a_round_dependent_policy():
    opponent = random_match_policy(7)
    for seat in (0, 1):
        value, policy = best_response(opponent, 3, "match", seat)
        players = (policy, opponent) if seat == 0 else (opponent, policy)
        assert (1 if seat == 0 else -1) * expected_return(*players, 3, "match") == pytest.approx(value, abs=1e-9)


@pytest.mark.parametrize("scoring", ["match", "chips"])
@pytest.mark.parametrize("name", ["uniform", "always bet", "random mixed"])
def test_one_round_best_response_is_the_best_of_all_pure_strategies(name, scoring):
    opponent = OPPONENTS[name]
    best_first = max(expected_return(s, opponent, 1, scoring) for s in pure_strategies(seat_starts=True))
    best_second = max(-expected_return(opponent, s, 1, scoring) for s in pure_strategies(seat_starts=False))
    assert best_response(opponent, 1, scoring, 0)[0] == pytest.approx(best_first, abs=1e-12)
    assert best_response(opponent, 1, scoring, 1)[0] == pytest.approx(best_second, abs=1e-12)


def test_best_response_is_fast():
    opponent = OPPONENTS["random mixed"]
    best_response(opponent, 5, "match", 0)  # fills the random policy's table
    start = time.perf_counter()
    for seat in (0, 1) * 10:
        best_response(opponent, 5, "match", seat)
    assert (time.perf_counter() - start) / 20 < 0.02  # ~1-2 ms on a laptop core; the budget leaves room


# -- NashConv of reference policies (match scoring, 5 rounds, each played in every round) ---------------------


def test_always_bet_and_call_is_exploited_by_0_40_in_either_seat():
    """Independently computed: a best response gets about +0.40 of a match in either seat (NashConv 0.80)."""
    policy = round_policy_as_match_policy(ALWAYS_BET)
    for seat in (0, 1):
        assert best_response(policy, 5, "match", seat)[0] == pytest.approx(0.40, abs=0.005)
    assert nash_conv(policy, 5, "match") == pytest.approx(0.80, abs=0.005)
    assert exploitability(policy, 5, "match") == pytest.approx(nash_conv(policy, 5, "match") / 2)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("uniform random", 1.12), ("one-round chip Nash, alpha 1/3", 0.30), ("match equilibrium's round 1", 0.26)],
)
def test_nash_conv_of_reference_policies(name, expected):
    """Independently computed NashConv when one round policy is used in every round of a 5-round match.

    The one-round chip equilibrium is not an equilibrium of the match: playing each hand for chips ignores
    that only the chip leader wins. Nor is the match equilibrium's first round, which ignores the chips.
    """
    round_policy = {
        "uniform random": uniform_round_policy(),
        "one-round chip Nash, alpha 1/3": nash_round_policy(Fraction(1, 3)),
        "match equilibrium's round 1": round_policy_at(solve_match(5, "match").policy, 1, 0),
    }[name]
    assert nash_conv(round_policy_as_match_policy(round_policy), 5, "match") == pytest.approx(expected, abs=0.005)


@pytest.mark.parametrize("alpha", [0, Fraction(1, 6), Fraction(1, 3)])
def test_one_round_chip_nash_family_is_unexploitable_under_chip_scoring(alpha):
    assert abs(nash_conv(round_policy_as_match_policy(nash_round_policy(alpha)), 1, "chips")) < 1e-9


def test_always_bet_is_exploitable_under_chip_scoring():
    assert nash_conv(round_policy_as_match_policy(ALWAYS_BET), 1, "chips") > 0.1


def test_round_policy_is_validated():
    bad = uniform_round_policy()
    bad[("K", ())] = {"check": 0.5, "call": 0.5}
    with pytest.raises(ValueError, match="legal"):
        round_policy_as_match_policy(bad)
    bad[("K", ())] = {"check": 0.7, "bet": 0.7}
    with pytest.raises(ValueError, match="distribution"):
        round_policy_as_match_policy(bad)
    with pytest.raises(ValueError, match="seat"):
        best_response(OPPONENTS["uniform"], 1, "match", 2)


# -- agents ---------------------------------------------------------------------------------------------------


def test_strong_agent_is_the_match_equilibrium():
    assert spiral_envs.spec("KuhnPoker-v1").load_expert() is KuhnPokerMatchNashAgent
    assert isinstance(make_agent("strong", "KuhnPoker-v1", seed=3), KuhnPokerMatchNashAgent)


@pytest.mark.parametrize("scoring", ["match", "chips"])
def test_match_nash_agent_plays_the_solved_policy_from_the_view(scoring):
    env = spiral_envs.make("KuhnPoker-v1", num_rounds=3, scoring=scoring)
    agent, other = KuhnPokerMatchNashAgent(seed=1), RandomAgent(seed=2)
    solution = solve_match(3, scoring)
    for seed in range(20):
        env.reset(seed=seed)
        while not env.terminations[env.agent_selection]:
            info = env.infos[env.agent_selection]
            view = info["view"]
            if env.agent_selection == "player_0":
                chips = view["chips"][0]
                assert agent.policy(view) == solution.policy(view["round"], chips, view["card"], view["betting"])
                answer = agent(str(env.observe("player_0")), info)
                assert answer in {boxed(m) for m in info["legal_actions"]}
            else:
                answer = other(str(env.observe("player_1")), info)
            env.step(answer)


def test_policy_agent_playing_a_best_response_exploits_always_bet():
    """About +0.40 a match is the exact expectation (see above); 400 sampled 5-round games land near it."""
    env = spiral_envs.make("KuhnPoker-v1")
    victim = round_policy_as_match_policy(ALWAYS_BET)
    exploiter = KuhnPokerPolicyAgent(best_response(victim, 5, "match", 1)[1], seed=0)
    bettor = KuhnPokerPolicyAgent(victim, seed=1)
    total = 0.0
    for seed in range(400):
        env.reset(seed=seed)
        while not env.terminations[env.agent_selection]:
            agent = bettor if env.agent_selection == "player_0" else exploiter
            env.step(agent(str(env.observe(env.agent_selection)), env.infos[env.agent_selection]))
        total += env.rewards["player_1"]
    assert total / 400 > 0.2


# -- scoring --------------------------------------------------------------------------------------------------


def test_chip_scoring_returns_net_chips_and_penalises_invalid_answers_with_the_worst_result():
    env = spiral_envs.make("KuhnPoker-v1", num_rounds=1, scoring="chips")
    env.reset(seed=0)
    assert env.infos["player_0"]["view"]["scoring"] == "chips"
    assert env.invalid_move_penalty == -2.0
    env.step(boxed("[bet]"))
    env.step(boxed("[call]"))
    chips = env.infos["player_0"]["chips"]
    assert env.rewards == {"player_0": float(chips["player_0"]), "player_1": float(chips["player_1"])}
    assert abs(chips["player_0"]) == 2
    assert spiral_envs.make("KuhnPoker-v1", scoring="chips").invalid_move_penalty == -10.0
    assert spiral_envs.make("KuhnPoker-v1").invalid_move_penalty == -1.0
    assert spiral_envs.make("KuhnPoker-v1", scoring="chips", invalid_move_penalty=-12).invalid_move_penalty == -12.0
    with pytest.raises(ValueError, match=r"invalid_move_penalty=-1 is above KuhnPoker's worst legal result -2"):
        spiral_envs.make("KuhnPoker-v1", num_rounds=1, scoring="chips", invalid_move_penalty=-1)  # a called bet: -2
    env.reset(seed=0)
    env.step(boxed("[fold]"))
    assert env.rewards == {"player_0": -2.0, "player_1": 2.0}
    with pytest.raises(ValueError, match=r"scoring='points'.*'match', 'chips'"):
        spiral_envs.make("KuhnPoker-v1", scoring="points")


def test_chip_scoring_rules_text_says_the_score_is_the_net_chips():
    match = spiral_envs.make("KuhnPoker-v1").game.rules(0)
    chips = spiral_envs.make("KuhnPoker-v1", scoring="chips").game.rules(0)
    assert "more chips wins the game" in match and "more chips wins" not in chips
    assert "score for the game is your net chips" in chips
