"""KuhnPoker-v1: rules with betting that counts, the chip leader wins, seeded deals, hidden cards, Nash agent."""

from __future__ import annotations

import random
import re
from fractions import Fraction

import pytest
from game_helpers import KuhnPokerNashAgent
from pettingzoo.test import api_test, seed_test

import spiral_envs
from spiral_envs import RandomAgent, TextGameEnv, boxed, make_agent
from spiral_envs.games.kuhn_poker import (
    CARDS,
    KuhnPoker,
    KuhnPokerState,
)
from spiral_envs.games.kuhn_theory import KuhnPokerMatchNashAgent

CARD_TOKEN = re.compile(r"\b[JQK]\b")
LINES = (("check", "check"), ("check", "bet", "call"), ("check", "bet", "fold"), ("bet", "call"), ("bet", "fold"))


def deal_seeds(num_rounds: int = 1) -> dict[tuple[str, str], int]:
    """A seed for each of the 6 deals of round 1, found by dealing with the real rules code."""
    seeds: dict[tuple[str, str], int] = {}
    seed = 0
    while len(seeds) < 6:
        seeds.setdefault(KuhnPokerState(random.Random(seed), num_rounds).cards, seed)
        seed += 1
    return seeds


DEALS = deal_seeds()


def one_round(cards: tuple[str, str], actions: tuple[str, ...] = ()) -> KuhnPokerState:
    state = KuhnPokerState(random.Random(DEALS[cards]), 1)
    for action in actions:
        state.apply_action(action)
    return state


def play_rounds(state: KuhnPokerState, rounds: list[tuple[str, ...]]) -> None:
    for actions in rounds:
        for action in actions:
            state.apply_action(action)


# -- rules --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actions", "moved", "pot"),
    [(("check", "check"), 1, 2), (("check", "bet", "call"), 2, 4), (("bet", "call"), 2, 4)],
)
def test_showdown_higher_card_takes_a_pot_grown_by_each_bet_and_call(actions, moved, pot):
    for cards in DEALS:
        state = one_round(cards, actions[:-1])
        assert state.pot == pot - (actions[-1] == "call")
        state.apply_action(actions[-1])
        higher = 0 if CARDS.index(cards[0]) > CARDS.index(cards[1]) else 1
        assert state.is_terminal()
        assert state.chips[higher] == moved and state.chips[1 - higher] == -moved
        assert state.results[-1].showdown and state.results[-1].winner == higher


@pytest.mark.parametrize(("actions", "winner"), [(("bet", "fold"), 0), (("check", "bet", "fold"), 1)])
def test_a_fold_loses_only_the_ante_whatever_the_cards(actions, winner):
    for cards in DEALS:
        state = one_round(cards, actions)
        assert state.chips[winner] == 1 and state.chips[1 - winner] == -1
        assert not state.results[-1].showdown
        assert state.returns() == ((1.0, -1.0) if winner == 0 else (-1.0, 1.0))


def test_legal_actions_follow_the_betting():
    state = one_round(("J", "Q"))
    assert list(state.legal_actions()) == ["check", "bet"]
    state.apply_action("check")
    assert list(state.legal_actions()) == ["check", "bet"]
    with pytest.raises(spiral_envs.InvalidMove):
        state.apply_action("call")
    state.apply_action("bet")
    assert list(state.legal_actions()) == ["call", "fold"]
    with pytest.raises(spiral_envs.InvalidMove):
        state.apply_action("check")
    state.apply_action("fold")
    assert list(state.legal_actions()) == []
    with pytest.raises(spiral_envs.InvalidMove):
        state.apply_action("bet")


def test_starting_player_alternates_and_chips_stay_zero_sum():
    state = KuhnPokerState(random.Random(3), 5)
    rng = random.Random(4)
    starters = []
    while not state.is_terminal():
        if not state.betting:
            starters.append(state.current_player())
            assert state.player_view(state.current_player())["starts"]
            assert not state.player_view(1 - state.current_player())["starts"]
        state.apply_action(rng.choice(list(state.legal_actions())))
        assert state.chips[0] + state.chips[1] == 0
    assert starters == [0, 1, 0, 1, 0]
    assert [r.starter for r in state.results] == starters


def test_the_chip_leader_wins_even_when_the_last_hand_went_the_other_way():
    state = KuhnPokerState(random.Random(0), 5)
    # player_0 takes four pots by making player_1 fold, then folds the last hand to a bet.
    play_rounds(state, [("bet", "fold"), ("check", "bet", "fold"), ("bet", "fold"), ("check", "bet", "fold")])
    assert state.chips == [4, -4]
    play_rounds(state, [("check", "bet", "fold")])
    assert state.results[-1].winner == 1
    assert state.is_terminal() and state.chips == [3, -3]
    assert state.returns() == (1.0, -1.0)
    assert state.score() == {"chips": {"player_0": 3, "player_1": -3}, "round": 5, "num_rounds": 5}  # data only
    assert KuhnPoker(5).outcome_text(state) == "player_0 has more chips after 5 rounds (+3 to -3)"


def test_equal_chips_is_a_draw():
    state = KuhnPokerState(random.Random(0), 2)
    play_rounds(state, [("bet", "fold"), ("bet", "fold")])
    assert state.is_terminal() and state.chips == [0, 0]
    assert state.returns() == (0.0, 0.0)
    assert "draw" in KuhnPoker(2).outcome_text(state)


def test_num_rounds_must_be_a_positive_int():
    for bad in (0, -1):
        with pytest.raises(ValueError, match="num_rounds"):
            spiral_envs.make("KuhnPoker-v1", num_rounds=bad)
    for bad in (2.0, True, "3"):
        with pytest.raises(TypeError, match="num_rounds"):
            spiral_envs.make("KuhnPoker-v1", num_rounds=bad)


# -- seeding ------------------------------------------------------------------------------------------


def dealt_cards(env: TextGameEnv) -> list[tuple[str, str]]:
    return [r.cards for r in env.state.results]


def check_through(env: TextGameEnv) -> None:
    """Play every hand as check-check, so the deal is the only chance event."""
    while env.agents and not env.terminations[env.agent_selection]:
        env.step(boxed("[check]"))


def test_same_seed_same_cards_and_interleaved_envs_do_not_share_a_stream():
    alone = []
    for seed in (11, 12):
        env = spiral_envs.make("KuhnPoker-v1")
        env.reset(seed=seed)
        check_through(env)
        alone.append(dealt_cards(env))
    assert alone[0] != alone[1]
    again = spiral_envs.make("KuhnPoker-v1")
    again.reset(seed=11)
    check_through(again)
    assert dealt_cards(again) == alone[0]

    a, b = spiral_envs.make("KuhnPoker-v1"), spiral_envs.make("KuhnPoker-v1")
    a.reset(seed=11)
    random.seed(0)
    b.reset(seed=12)
    while a.agents and not a.terminations[a.agent_selection]:
        for env in (a, b):
            env.step(boxed("[check]"))
            random.random()  # the global stream must not matter
    assert [dealt_cards(a), dealt_cards(b)] == alone


# -- what each player may see -------------------------------------------------------------------------


def card_tokens(env: TextGameEnv, agent: str) -> set[str]:
    """Card names in the observation after the rules text (which names every card)."""
    player = int(agent[-1])
    text = str(env.observe(agent))
    rules = env.game.rules(player)
    assert text.startswith(rules)
    return set(CARD_TOKEN.findall(text[len(rules) :]))


def allowed_cards(env: TextGameEnv, player: int) -> set[str]:
    """Own cards, and the opponent's card of each finished round that reached a showdown."""
    state = env.state
    allowed = {state.cards[player]}
    for result in state.results:
        allowed.add(result.cards[player])
        if result.showdown:
            allowed.add(result.cards[1 - player])
    return allowed


@pytest.mark.parametrize("history", ["full", "current"])
def test_observations_show_the_opponent_card_only_after_a_showdown(history):
    for cards, seed in DEALS.items():
        for line in LINES:
            env = spiral_envs.make("KuhnPoker-v1", num_rounds=1, history=history)
            env.reset(seed=seed)
            for action in line:
                for agent in env.agents:
                    assert card_tokens(env, agent) == {cards[int(agent[-1])]}
                env.step(boxed(f"[{action}]"))
            showdown = line[-1] != "fold"
            for p, agent in enumerate(env.agents):
                assert card_tokens(env, agent) == (set(cards) if showdown else {cards[p]})


def test_full_history_reveals_past_showdowns_and_hides_folded_hands():
    rng = random.Random(5)
    revealed = hidden = 0
    for seed in range(30):
        env = spiral_envs.make("KuhnPoker-v1")
        env.reset(seed=seed)
        while env.agents and not env.terminations[env.agent_selection]:
            for agent in env.agents:
                assert card_tokens(env, agent) == allowed_cards(env, int(agent[-1]))
            env.step(boxed(rng.choice(env.infos[env.agent_selection]["legal_actions"])))
        for result in env.state.results:
            if result.showdown:
                revealed += 1
                assert f"Player 0 had {result.cards[0]}, Player 1 had {result.cards[1]}" in env.observe("player_0")
            else:
                hidden += 1
    assert revealed and hidden


def test_a_player_view_does_not_depend_on_the_opponent_hidden_card():
    for line in LINES:
        shown_at_the_end = line[-1] != "fold"
        for prefix in range(len(line) + (not shown_at_the_end)):
            for cards in DEALS:
                for other in DEALS:
                    if other[0] == cards[0] and other != cards:
                        mine, theirs = one_round(cards, line[:prefix]), one_round(other, line[:prefix])
                        assert mine.player_view(0) == theirs.player_view(0)


# -- the PettingZoo protocol --------------------------------------------------------------------------


@pytest.mark.parametrize("num_rounds", [5, 1])
def test_pettingzoo_api_and_seed(num_rounds):
    api_test(spiral_envs.make("KuhnPoker-v1", num_rounds=num_rounds), num_cycles=100)
    seed_test(lambda: spiral_envs.make("KuhnPoker-v1", num_rounds=num_rounds), num_cycles=20)


def test_invalid_move_ends_the_game_against_the_offender():
    env = spiral_envs.make("KuhnPoker-v1")
    env.reset(seed=0)
    env.step(boxed("[check]"))
    env.step(boxed("[call]"))  # nothing to call after a check
    assert env.rewards == {"player_0": 1.0, "player_1": -1.0}
    assert all(env.terminations.values())
    assert env.infos["player_1"]["invalid_move"] is True
    assert env.infos["player_0"]["winner"] == "player_0"
    assert env.infos["player_0"]["chips"] == {"player_0": 0, "player_1": 0}


def test_env_game_result_and_infos():
    env = spiral_envs.make("KuhnPoker-v1", num_rounds=1)
    assert env.metadata["name"] == "kuhn_poker_v1"
    env.reset(seed=DEALS[("K", "J")])
    assert env.infos["player_0"]["legal_actions"] == ["[check]", "[bet]"]
    assert env.infos["player_0"]["view"]["card"] == "K"
    env.step("I hold the best card. \\boxed{[bet]}")
    assert env.infos["player_1"]["legal_actions"] == ["[call]", "[fold]"]
    env.step("[call]")
    assert env.rewards == {"player_0": 1.0, "player_1": -1.0}
    assert env.infos["player_0"]["chips"] == {"player_0": 2, "player_1": -2}
    assert env.infos["player_0"]["invalid_move"] is False


# -- the Nash agent -----------------------------------------------------------------------------------


def expected_first_player_chips(cards: tuple[str, str], agents: list[KuhnPokerNashAgent], line=()) -> Fraction:
    """Exact expectation over both agents' mixed strategies, from the rules state (no sampling)."""
    state = one_round(cards, line)
    if state.is_terminal():
        return Fraction(state.chips[0])
    player = state.current_player()
    policy = agents[player].policy(state.player_view(player))
    assert list(policy) == list(state.legal_actions())
    assert sum(policy.values()) == 1 and all(p >= 0 for p in policy.values())
    return sum(p * expected_first_player_chips(cards, agents, (*line, a)) for a, p in policy.items() if p)


@pytest.mark.parametrize(("alpha_0", "alpha_1"), [(0, 0), (Fraction(1, 3), Fraction(1, 3)), (Fraction(1, 9), 0)])
def test_nash_agents_give_the_first_player_minus_one_eighteenth(alpha_0, alpha_1):
    agents = [KuhnPokerNashAgent(alpha=alpha_0), KuhnPokerNashAgent(alpha=alpha_1)]
    total = sum(expected_first_player_chips(cards, agents) for cards in DEALS)
    assert total / 6 == Fraction(-1, 18)


class PureStrategy:
    """A deterministic strategy: one action for each (card, betting so far) a player can face."""

    def __init__(self, choices: dict[tuple[str, tuple[str, ...]], str]) -> None:
        self.choices = choices

    def policy(self, view: dict) -> dict[str, Fraction]:
        choice = self.choices[(view["card"], view["betting"])]
        options = ("call", "fold") if choice in ("call", "fold") else ("check", "bet")
        return {a: Fraction(a == choice) for a in options}


def pure_strategies(first: bool) -> list[PureStrategy]:
    """All 64 pure strategies of a seat: 3 cards times 2 decision points, each with 2 actions."""
    points = [((), ("check", "bet")), (("check", "bet"), ("call", "fold"))]
    if not first:
        points = [(("check",), ("check", "bet")), (("bet",), ("call", "fold"))]
    infosets = [((card, betting), actions) for card in CARDS for betting, actions in points]
    strategies = []
    for bits in range(2 ** len(infosets)):
        choices = {key: actions[(bits >> i) & 1] for i, (key, actions) in enumerate(infosets)}
        strategies.append(PureStrategy(choices))
    return strategies


@pytest.mark.parametrize("alpha", [0, Fraction(1, 6), Fraction(1, 3)])
def test_no_strategy_beats_the_nash_agent_in_either_seat(alpha):
    """A best response (the best of all pure strategies) gains nothing over the game value of -1/18."""
    nash = KuhnPokerNashAgent(alpha=alpha)

    def value(agents) -> Fraction:
        return sum(expected_first_player_chips(cards, agents) for cards in DEALS) / 6

    assert max(value([s, nash]) for s in pure_strategies(first=True)) == Fraction(-1, 18)
    assert min(value([nash, s]) for s in pure_strategies(first=False)) == Fraction(-1, 18)


def test_nash_policy_of_the_family():
    agent = KuhnPokerNashAgent(alpha=Fraction(1, 6))
    first, second = {"starts": True}, {"starts": False}
    assert agent.policy({**first, "card": "J", "betting": ()}) == {"check": Fraction(5, 6), "bet": Fraction(1, 6)}
    assert agent.policy({**first, "card": "K", "betting": ()}) == {"check": Fraction(1, 2), "bet": Fraction(1, 2)}
    assert agent.policy({**first, "card": "Q", "betting": ("check", "bet")})["call"] == Fraction(1, 2)
    assert agent.policy({**second, "card": "J", "betting": ("check",)})["bet"] == Fraction(1, 3)
    assert agent.policy({**second, "card": "Q", "betting": ("bet",)})["call"] == Fraction(1, 3)
    with pytest.raises(ValueError, match="alpha"):
        KuhnPokerNashAgent(alpha=Fraction(1, 2))


def play(env: TextGameEnv, agents: dict, seed: int) -> dict[str, int]:
    return spiral_envs.play_game(env, agents, seed).score["chips"]


def test_nash_agent_wins_chips_from_a_random_agent_in_both_seats():
    env = spiral_envs.make("KuhnPoker-v1", num_rounds=1)
    for seat in ("player_0", "player_1"):
        other = "player_1" if seat == "player_0" else "player_0"
        agents = {seat: KuhnPokerNashAgent(seed=1), other: RandomAgent(seed=2)}
        total = sum(play(env, agents, seed)[seat] for seed in range(2000))
        assert total / 2000 > 0.05  # exact expectation: 1/6 chip a round in either seat


def test_nash_agent_answers_in_the_paper_format_and_is_seeded():
    env = spiral_envs.make("KuhnPoker-v1")
    env.reset(seed=0)
    info = env.infos[env.agent_selection]
    answers = [KuhnPokerNashAgent(seed=7)(str(env.observe(env.agent_selection)), info) for _ in range(2)]
    assert answers[0] == answers[1] and answers[0] in (boxed("[check]"), boxed("[bet]"))
    assert isinstance(env.game, KuhnPoker) and spiral_envs.spec("KuhnPoker-v1").load_expert() is KuhnPokerMatchNashAgent


def test_strong_agent_wins_five_round_matches_from_a_random_agent_in_both_seats():
    """The match equilibrium (the strong agent) expects about +0.2 to +0.3 of a match against random play."""
    env = spiral_envs.make("KuhnPoker-v1")
    for seat in ("player_0", "player_1"):
        other = "player_1" if seat == "player_0" else "player_0"
        agents = {seat: make_agent("strong", "KuhnPoker-v1", seed=1), other: RandomAgent(seed=2)}
        total = 0.0
        for seed in range(400):
            env.reset(seed=seed)
            while not env.terminations[env.agent_selection]:
                env.step(
                    agents[env.agent_selection](str(env.observe(env.agent_selection)), env.infos[env.agent_selection])
                )
            total += env.rewards[seat]
        assert total / 400 > 0.05


def test_a_seed_deals_what_rng_sample_deals_from_its_stream():
    """The deal is two draws and a table lookup; it must be the cards `rng.sample(CARDS, 2)` gives, so that a
    seed plays the games it always played (and every ordered pair of cards stays equally likely)."""
    counts: dict[tuple[str, str], int] = {}
    for seed in range(300):
        state = KuhnPokerState(random.Random(seed), 5)
        reference = random.Random(seed)
        while not state.is_terminal():
            if not state.betting:
                expected = tuple(reference.sample(CARDS, 2))
                assert state.cards == expected, (seed, state.round)
                counts[expected] = counts.get(expected, 0) + 1
            state.apply_action(state.legal_actions()[0])
    assert len(counts) == 6 and min(counts.values()) > 200  # 1,500 deals: each pair ~250 times
