"""SimpleNegotiation-v1: trades, the move grammar, hidden values, the end of the game, and the heuristic agent."""

from __future__ import annotations

import copy
import random
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pettingzoo.test import api_test, seed_test

import spiral_envs
from spiral_envs import InvalidMove, RandomAgent, TextGameEnv, boxed, make_agent
from spiral_envs.games import negotiation, negotiation_moves
from spiral_envs.games.negotiation import (
    NegotiationHeuristicAgent,
    NegotiationState,
    SimpleNegotiation,
)
from spiral_envs.games.negotiation_moves import MAX_MESSAGE_CHARS, Accept, Deny, Offer, Talk

ENV_ID = "SimpleNegotiation-v1"
GAME = SimpleNegotiation()


def new_env(**kwargs: Any) -> TextGameEnv:
    env = spiral_envs.make(ENV_ID, **kwargs)
    env.reset(seed=0)
    return env


def play(env: TextGameEnv, *moves: str) -> None:
    """Step each move, boxed, asserting each one was legal."""
    for move in moves:
        env.step(boxed(move))
        assert "error" not in env.transcript[-1], env.transcript[-1]


def inventories(env: TextGameEnv) -> list[tuple[int, ...]]:
    return list(env.state.inventories)


def assert_invalid_ends_game(env: TextGameEnv, offender: str, reason: str) -> None:
    other = "player_1" if offender == "player_0" else "player_0"
    assert all(env.terminations.values())
    assert env.rewards == {offender: -1.0, other: 1.0}
    assert env.infos[offender]["invalid_move"] is True
    assert re.search(reason, env.infos[offender]["reason"]), env.infos[offender]["reason"]
    assert env.infos[other]["winner"] == other


# -- trades -----------------------------------------------------------------------------------------------------


def test_registered_env() -> None:
    env = spiral_envs.make(ENV_ID)
    assert isinstance(env, TextGameEnv) and isinstance(env.game, SimpleNegotiation)
    assert env.metadata["name"] == "simple_negotiation_v1"
    assert env.history == "full"
    assert env.game.max_turns == 10
    assert isinstance(make_agent("strong", ENV_ID, seed=0), NegotiationHeuristicAgent)


def test_trade_moves_resources_only_when_accepted() -> None:
    env = new_env()
    play(env, "Wood for Gold? [Offer: 3 Wood -> 2 Gold]")
    assert inventories(env) == [(10, 10), (10, 10)]
    play(env, "No way. [Deny]")
    assert inventories(env) == [(10, 10), (10, 10)]
    assert env.state.pending is None
    play(env, "[Offer: 3 Wood -> 2 Gold]", "Deal! [Accept]")
    assert inventories(env) == [(7, 12), (13, 8)]
    assert env.state.pending is None
    (trade,) = env.state.score()["trades"]
    assert trade == {
        "turn": 3,
        "proposer": "player_0",
        "acceptor": "player_1",
        "proposer_gave": {"Wood": 3},
        "proposer_got": {"Gold": 2},
    }


def test_talk_lets_a_pending_offer_lapse() -> None:
    env = new_env()
    play(env, "[Offer: 3 Wood -> 2 Gold]", "Let me think about it.")
    assert env.state.pending is None
    assert "[Accept]" not in env.infos["player_0"]["legal_actions"]
    env.step(boxed("[Accept]"))  # player_0 has no offer to answer
    assert_invalid_ends_game(env, "player_0", "no offer to accept")
    assert inventories(env) == [(10, 10), (10, 10)]


def test_counter_offer_denies_the_pending_offer() -> None:
    env = new_env()
    play(env, "[Offer: 3 Wood -> 2 Gold]", "Better: [Offer: 1 Gold -> 4 Wood]")
    assert env.state.pending == (1, Offer((0, 1), (4, 0)))
    assert env.infos["player_0"]["view"]["pending_offer"] == {"from": 1, "give": {"Gold": 1}, "get": {"Wood": 4}}
    play(env, "[Accept]")  # accepts the counter-offer, on its terms
    assert inventories(env) == [(6, 11), (14, 9)]
    prompt = str(env.observe("player_1"))
    assert "Player 1 made a counter-offer, which denies the offer." in prompt
    assert "Player 0 accepted: Player 1 gave 1 Gold for 4 Wood." in prompt


def test_legal_actions_list_every_single_resource_offer() -> None:
    state = GAME.new_state(random.Random(0))
    legal = state.legal_actions()
    assert len(legal) == 2 * 10 * 10  # n Wood -> m Gold and n Gold -> m Wood, 1 <= n, m <= 10
    assert GAME.format_action(legal[0]) == "[Offer: 1 Wood -> 1 Gold]"
    state.apply_action(Offer((3, 0), (0, 2)))
    legal = state.legal_actions()
    assert legal[:2] == (Accept(), Deny())
    assert len(legal) == 2 + 200
    state.apply_action(Accept())  # player_1 now holds 13 Wood, 8 Gold; player_0 7 Wood, 12 Gold
    offers = state.legal_actions()
    assert len(offers) == 7 * 8 + 12 * 13
    assert all(isinstance(a, Offer) for a in offers)
    for action in offers:
        assert GAME.parse_action(GAME.format_action(action), state) == action
    assert Talk("hi") not in offers  # talk is always legal but never listed


# -- invalid moves end the game -----------------------------------------------------------------------------


def test_accept_without_pending_offer_is_invalid() -> None:
    env = new_env()
    env.step(boxed("I accept! [Accept]"))
    assert_invalid_ends_game(env, "player_0", "no offer to accept")


def test_deny_without_pending_offer_is_invalid() -> None:
    env = new_env()
    play(env, "hello")
    env.step(boxed("[Deny]"))
    assert_invalid_ends_game(env, "player_1", "no offer to deny")


def test_offering_more_than_you_hold_is_invalid() -> None:
    env = new_env()
    env.step(boxed("[Offer: 11 Wood -> 1 Gold]"))
    assert_invalid_ends_game(env, "player_0", "cannot offer 11 Wood: you hold 10 Wood, 10 Gold")


def test_offering_resources_traded_away_is_invalid() -> None:
    env = new_env()
    play(env, "[Offer: 8 Wood -> 1 Gold]", "[Accept]", "thanks")
    env.step(boxed("[Offer: 11 Wood -> 1 Gold]"))  # player_1 holds 18 Wood now
    assert env.agents and not any(env.terminations.values())
    env.step(boxed("[Offer: 3 Wood -> 1 Gold]"))  # player_0 holds 2 Wood
    assert_invalid_ends_game(env, "player_0", "cannot offer 3 Wood: you hold 2 Wood")


def test_asking_for_more_than_the_opponent_holds_is_invalid() -> None:
    env = new_env()
    env.step(boxed("[Offer: 1 Wood -> 11 Gold]"))
    assert_invalid_ends_game(env, "player_0", "cannot ask for 11 Gold: your opponent holds 10 Wood, 10 Gold")


def test_two_action_tokens_are_invalid() -> None:
    env = new_env()
    play(env, "[Offer: 3 Wood -> 2 Gold]")
    env.step(boxed("[Deny] but [Offer: 1 Gold -> 4 Wood]"))
    assert_invalid_ends_game(env, "player_1", "only one action token")
    assert inventories(env) == [(10, 10), (10, 10)]


def test_invalid_move_with_retries_keeps_the_state() -> None:
    env = new_env(error_allowance=1)
    play(env, "[Offer: 3 Wood -> 2 Gold]")
    env.step(boxed("[Offer: 20 Gold -> 1 Wood]"))
    assert env.agent_selection == "player_1"
    assert env.infos["player_1"]["invalid_move"] is True
    assert env.state.pending == (0, Offer((3, 0), (0, 2)))  # the rejected move changed nothing
    play(env, "[Accept]")
    assert inventories(env) == [(7, 12), (13, 8)]


# -- the end of the game ------------------------------------------------------------------------------------


def test_game_ends_after_max_turns_and_bigger_gain_wins() -> None:
    # Both gain from 3 Wood -> 2 Gold, but player_1 more: +45 - 10 = +35 against player_0's -15 + 30 = +15.
    env = new_env()
    play(env, "[Offer: 3 Wood -> 2 Gold]", "[Accept]")
    for turn in range(2, 10):
        assert not any(env.terminations.values()), turn
        play(env, f"turn {turn}: nothing more from me")
    assert all(env.terminations.values())
    assert env.rewards == {"player_0": -1.0, "player_1": 1.0}
    info = env.infos["player_0"]
    assert info["winner"] == "player_1"
    assert info["invalid_move"] is False
    assert info["value_gain"] == {"player_0": 15, "player_1": 35}
    assert info["inventories"] == {"player_0": {"Wood": 7, "Gold": 12}, "player_1": {"Wood": 13, "Gold": 8}}
    assert "player_1's value grew more" in info["reason"]


def test_player_0_wins_a_trade_in_its_favour() -> None:
    env = new_env(max_turns=2)
    play(env, "[Offer: 1 Wood -> 2 Gold]", "[Accept]")  # player_0 +25, player_1 +5
    assert env.rewards == {"player_0": 1.0, "player_1": -1.0}
    assert env.infos["player_1"]["value_gain"] == {"player_0": 25, "player_1": 5}


def test_no_trade_is_a_draw() -> None:
    env = new_env()
    play(env, "[Offer: 3 Wood -> 2 Gold]", "[Deny]", *(f"chat {i}" for i in range(8)))
    assert all(env.terminations.values())
    assert env.rewards == {"player_0": 0.0, "player_1": 0.0}
    assert env.infos["player_0"]["winner"] is None
    assert "no trade" in env.infos["player_0"]["reason"]


def test_equal_gain_is_a_draw() -> None:
    env = new_env(max_turns=2)
    play(env, "[Offer: 2 Wood -> 2 Gold]", "[Accept]")  # both +20
    assert env.rewards == {"player_0": 0.0, "player_1": 0.0}
    assert "equal growth" in env.infos["player_0"]["reason"]


def test_an_offer_on_the_last_turn_is_never_answered() -> None:
    env = new_env(max_turns=1)
    play(env, "[Offer: 1 Wood -> 5 Gold]")
    assert all(env.terminations.values())
    assert env.rewards == {"player_0": 0.0, "player_1": 0.0}


@pytest.mark.parametrize("max_turns", [0, -1, 2.0, "10", True, None])
def test_max_turns_must_be_a_positive_int(max_turns: Any) -> None:
    with pytest.raises(ValueError, match="max_turns must be an int >= 1"):
        spiral_envs.make(ENV_ID, max_turns=max_turns)


def test_odd_max_turns() -> None:
    env = new_env(max_turns=3)
    play(env, "a", "b")
    assert env.agent_selection == "player_0"
    play(env, "c")
    assert all(env.terminations.values())


# -- what each player sees --------------------------------------------------------------------------------------


SCRIPT = ("Hi! [Offer: 3 Wood -> 2 Gold]", "[Accept]", "[Offer: 1 Wood -> 2 Gold]", "Nope. [Offer: 2 Gold -> 1 Wood]")


def observations_of(player: str) -> list[str]:
    env = new_env()
    seen = []
    for move in SCRIPT:
        seen.append(str(env.observe(player)))
        play(env, move)
    seen.append(str(env.observe(player)))
    return seen


def test_opponent_values_never_reach_a_player(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each player's prompts are the same whatever its opponent's values are: they are not in them."""
    before = {p: observations_of(p) for p in ("player_0", "player_1")}
    monkeypatch.setattr(negotiation, "VALUES", ((5, 15), (7, 11)))
    assert observations_of("player_0") == before["player_0"]
    monkeypatch.setattr(negotiation, "VALUES", ((9, 3), (15, 5)))
    assert observations_of("player_1") == before["player_1"]
    assert observations_of("player_0") != before["player_0"]  # the check can fail: own values are shown


def test_view_holds_own_values_and_public_facts_only() -> None:
    env = new_env()
    play(env, *SCRIPT[:2])
    view = env.infos["player_0"]["view"]
    assert view["values"] == {"Wood": 5, "Gold": 15}
    assert view["inventory"] == {"Wood": 7, "Gold": 12}
    assert view["opponent_inventory"] == {"Wood": 13, "Gold": 8}
    assert view["turn"] == 2 and view["max_turns"] == 10
    assert view["messages"] == [(0, SCRIPT[0]), (1, "[Accept]")]
    assert view["trades"][0]["proposer_gave"] == {"Wood": 3}
    assert not any("value" in key and key != "values" for key in view)
    assert set(view) == {
        *("player", "turn", "max_turns", "resources", "inventory", "values", "opponent_inventory"),
        *("pending_offer", "trades", "messages"),
    }


def test_rules_text() -> None:
    rules = GAME.rules(1)
    assert rules.startswith("You are Player 1 in the Negotiation Game.")
    assert re.search(r"\[Wood\]\s+Qty: 10\s+Value: 15", rules)
    assert re.search(r"\[Gold\]\s+Qty: 10\s+Value: 5", rules)
    assert "[Offer: 3 Wood -> 2 Gold]" in rules and "[Accept]" in rules and "[Deny]" in rules
    assert "lasts for 10 turns" in rules and "\\boxed{" in rules and "grew more wins" in rules


@pytest.mark.parametrize(
    ("answer", "valid", "reason"),
    [
        ("\\boxed{Hello, shall we trade?}", True, ""),
        ("Hello, shall we trade?", False, "no move found"),  # talk outside a box
        ("\\boxed{" + "y" * MAX_MESSAGE_CHARS + "}", True, ""),
        ("\\boxed{" + "y" * (MAX_MESSAGE_CHARS + 1) + "}", False, f"the limit is {MAX_MESSAGE_CHARS}"),
    ],
)
def test_the_rules_say_what_happens_to_talk_outside_a_box_and_to_a_long_message(
    answer: str, valid: bool, reason: str
) -> None:
    rules = GAME.rules(0)
    assert "talk outside a box is no move, an invalid move" in rules
    assert f"a message of more than {MAX_MESSAGE_CHARS} characters" in rules
    env = new_env()
    env.step(answer)
    if valid:
        assert env.outcome is None and env.agent_selection == "player_1"
    else:
        assert env.outcome["invalid_move"] and reason in env.outcome["reason"]


def test_full_history_shows_every_message_and_outcome() -> None:
    env = new_env()
    play(env, *SCRIPT[:3])
    prompt = str(env.observe("player_1"))
    for line in (
        f"Player 0 said: {SCRIPT[0]}",
        "Player 0 offers 3 Wood for 2 Gold of Player 1.",
        "Player 1 said: [Accept]",
        "Player 1 accepted: Player 0 gave 3 Wood for 2 Gold.",
        "Pending offer from Player 0: they give you 1 Wood for 2 Gold of yours.",
        "Turn 4 of 10: 7 turn(s) left",
        "Your resources: 13 Wood (worth 15 each), 8 Gold (worth 5 each); total value 235",
        "Your opponent's resources: 7 Wood, 12 Gold.",
    ):
        assert line in prompt
    assert prompt.index("Player 0 said") < prompt.index("Player 1 said")


def test_current_history_shows_only_the_last_move() -> None:
    env = new_env(history="current")
    play(env, "first words", "second words", "third words")
    prompt = str(env.observe("player_1"))
    assert "third words" in prompt
    assert "first words" not in prompt and "second words" not in prompt


# -- the move grammar -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("move", "expected"),
    [
        ("[offer: 3 wood->2 gold]", Offer((3, 0), (0, 2))),
        ("Deal? [Offer:3 Wood -> 2 Gold] please", Offer((3, 0), (0, 2))),
        ("[OFFER 2 woods, 1 wood → 2 golds.]", Offer((3, 0), (0, 2))),
        ("[Offer: 3x Wood and 2 x wood => 1 Gold]", Offer((5, 0), (0, 1))),
        ("Offer: 4 Gold -> 1 Wood", Offer((0, 4), (1, 0))),
        ("offer 4 gold -> 1 wood", Offer((0, 4), (1, 0))),
        ("Offer accepted? Not yet.", Talk()),
        # talk around an unbracketed offer is talk: only a bracketed token, or a whole bare one, is an action
        ("Offer 3 Wood -> 2 Gold please", Talk()),
        ("Offer: 3 Wood -> 2 Gold. Deal?", Talk()),
        ("Offer you something -> nice", Talk()),
        ("Accept. Thanks", Talk()),
        ("Offer 3 Wood -> 2 Gold", Offer((3, 0), (0, 2))),
        ("Offer: 3 Wood -> 2 Gold.", Offer((3, 0), (0, 2))),
        ("[Offer 3 Wood -> 2 Gold] please", Offer((3, 0), (0, 2))),
        ("hello [friend], what do you need?", Talk()),
        ("I will not say [offered] or [accepted]", Talk()),
        ("[Accept]", Accept()),
        ("accept", Accept()),
        ("  [ accept. ] thanks", Accept()),
        ("[DENY]", Deny()),
    ],
)
def test_parse_lenient_moves(move: str, expected: Any) -> None:
    state = GAME.new_state(random.Random(0))
    state.apply_action(Offer((1, 0), (0, 1)))
    state.apply_action(Talk("x"))
    state.apply_action(Offer((0, 1), (1, 0)))  # player_1 may now accept or deny
    if isinstance(expected, Offer):
        state.apply_action(Talk("y"))  # back to player_0, who can pay every offer tried here
    action = GAME.parse_action(move, state)
    assert action == expected
    assert type(action) is type(expected)
    assert action.message == move.strip()


@pytest.mark.parametrize(
    ("move", "reason"),
    [
        ("", "empty move"),
        ("   ", "empty move"),
        ("[Offer: 99999999999999999999 Wood -> 1 Gold]", "far more than anyone holds"),
        ("[Offer: 1" + "0" * 1500 + " Wood -> 1 Gold]", "far more than anyone holds"),
        ("[Offer: 1 Wood, 1 Gold -> 2 Gold]", "Gold is on both sides"),
        ("[Offer: 3 Wood]", "exactly one '->'"),
        ("[Offer: 3 Wood -> 1 Gold -> 2 Wood]", "exactly one '->'"),
        ("[Offer]", "exactly one '->'"),
        ("[Offer: -> 2 Gold]", "names nothing to give"),
        ("[Offer: 3 Wheat -> 2 Gold]", "'wheat' is not a resource"),
        ("[Offer: 0 Wood -> 2 Gold]", "at least 1"),
        ("[Offer: 1.5 Wood -> 2 Gold]", "not a count"),
        ("[Offer: -3 Wood -> 2 Gold]", "not a count"),
        ("[Offer: ٣ Wood -> 2 Gold]", "not a count"),
        ("[Offer: three Wood -> 2 Gold]", "not a count"),
        ("[Offer: 3 big Wood -> 2 Gold]", "cannot read"),
        ("[hello]", "not an action token"),
        ("[Accept] [Accept]", "only one action token"),
        ("x" * (MAX_MESSAGE_CHARS + 1), "the limit is"),
    ],
)
def test_parse_rejects_with_a_reason(move: str, reason: str) -> None:
    state = GAME.new_state(random.Random(0))
    with pytest.raises(InvalidMove, match=re.escape(reason)):
        GAME.parse_action(move, state)


def test_message_is_not_part_of_action_identity() -> None:
    assert Offer((1, 0), (0, 1), "please") == Offer((1, 0), (0, 1))
    assert hash(Talk("a")) == hash(Talk("b"))
    assert GAME.format_action(Offer((1, 0), (0, 1), "please [Offer: 1 Wood -> 1 Gold]")) == "[Offer: 1 Wood -> 1 Gold]"
    assert GAME.format_action(Talk("just talk")) == "just talk"


GRAMMAR_PIECES = st.sampled_from(
    [
        *("[", "]", "Offer", "offer:", ":", "->", "→", ",", " and ", "+", " ", "\n", "Wood", "gold", "Gold", "s"),
        *("x", "0", "1", "3", "10", "11", "99999999999999999999", "[Accept]", "[Deny]", "accept", "deny", "."),
        *("é", "\u0663", "\\boxed{", "}"),
    ]
)
MOVE_TEXT = st.text(max_size=200) | st.lists(GRAMMAR_PIECES, max_size=20).map("".join)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def state_after(prefix: list[Any]) -> NegotiationState:
    state = GAME.new_state(random.Random(0))
    for action in prefix:
        if not state.is_terminal():
            state.apply_action(action)
    return state


PREFIXES = st.sampled_from([[], [Offer((3, 0), (0, 2))], [Offer((3, 0), (0, 2)), Accept()], [Talk("a")] * 10])


@FUZZ
@given(move=MOVE_TEXT, prefix=PREFIXES)
def test_parse_any_text_gives_a_legal_action_or_invalid_move(move: str, prefix: list[Any]) -> None:
    state = state_after(prefix)
    try:
        action = GAME.parse_action(move, state)
    except InvalidMove as err:
        assert str(err)
        return
    state.apply_action(action)  # whatever parses is legal now


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers=st.lists(MOVE_TEXT.map(lambda m: boxed(m) if len(m) % 2 else m), min_size=1, max_size=4))
def test_env_step_never_raises(answers: list[str]) -> None:
    env = new_env(error_allowance=1)
    for answer in answers:
        if any(env.terminations.values()):
            break
        mover = env.agent_selection
        env.step(answer)
        last = env.transcript[-1]
        if "error" in last:
            assert env.infos[mover]["invalid_move"] is True and env.infos[mover]["reason"]
        assert env.observation_space(mover).contains(str(env.observe(mover)))


def test_huge_input_is_refused_quickly() -> None:
    state = GAME.new_state(random.Random(0))
    for move in ("[" * 1_000_000, "[Offer: " + "1 Wood, " * 200_000 + "-> 1 Gold]", "] [ " * 300_000):
        with pytest.raises(InvalidMove, match="the limit is"):
            GAME.parse_action(move, state)
    # Below the length limit, the offer grammar itself is linear too (a quadratic scan would hang here).
    assert negotiation_moves.parse_offer(": " + "1 Wood, " * 200_000 + "-> 1 Gold") == ((200_000, 0), (0, 1))
    with pytest.raises(InvalidMove):
        negotiation_moves.parse_offer(": 1 Wood" + " " * 1_000_000 + "x -> 1 Gold")


# -- PettingZoo checks ----------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_pettingzoo_api_and_seed() -> None:
    api_test(spiral_envs.make(ENV_ID), num_cycles=30)
    seed_test(lambda: spiral_envs.make(ENV_ID), num_cycles=30)


# -- the heuristic agent --------------------------------------------------------------------------------------


def heuristic_answer(prefix: list[str]) -> str:
    env = new_env()
    play(env, *prefix)
    agent = NegotiationHeuristicAgent(seed=0)
    mover = env.agent_selection
    return agent(str(env.observe(mover)), env.infos[mover])


def test_heuristic_accepts_only_offers_that_gain_and_win() -> None:
    # player_1 gives 3 Gold for 2 Wood: player_0 +35, player_1 +15.
    assert heuristic_answer(["hi", "[Offer: 3 Gold -> 2 Wood]"]).endswith("[Accept]}")
    # player_1 gives 2 Gold for 3 Wood: player_0 +15 but player_1 +35, a lost game.
    losing = heuristic_answer(["hi", "[Offer: 2 Gold -> 3 Wood]"])
    assert "[Accept]" not in losing and "[Offer:" in losing


def test_heuristic_offer_gains_for_both_and_most_for_itself() -> None:
    answer = heuristic_answer([])
    assert "[Offer: 4 Wood -> 10 Gold]" in answer  # +130 for player_0, +10 for player_1
    assert "[Offer: 4 Gold -> 10 Wood]" in heuristic_answer(["hello"])


def test_heuristic_mirror_match_never_trades() -> None:
    """Every trade loses the game for one side, so two careful players draw."""
    env = new_env()
    agents = [NegotiationHeuristicAgent(seed=1), NegotiationHeuristicAgent(seed=2)]
    while not any(env.terminations.values()):
        mover = env.agent_selection
        env.step(agents[int(mover[-1])](str(env.observe(mover)), env.infos[mover]))
    assert env.infos["player_0"]["trades"] == []
    assert env.rewards == {"player_0": 0.0, "player_1": 0.0}


def play_match(seat: int, games: int) -> dict[str, int]:
    """Heuristic in `seat` against RandomAgent, `games` seeded games; counts of win/draw/loss."""
    counts = {"win": 0, "draw": 0, "loss": 0}
    env = spiral_envs.make(ENV_ID)
    me = f"player_{seat}"
    for game in range(games):
        env.reset(seed=game)
        agents = {me: NegotiationHeuristicAgent(seed=game), f"player_{1 - seat}": RandomAgent(seed=10_000 + game)}
        while not any(env.terminations.values()):
            mover = env.agent_selection
            env.step(agents[mover](str(env.observe(mover)), copy.deepcopy(env.infos[mover])))
            assert not (mover == me and "error" in env.transcript[-1]), env.transcript[-1]
        assert not any(info["invalid_move"] for info in env.infos.values())
        reward = env.rewards[me]
        counts["win" if reward > 0 else "loss" if reward < 0 else "draw"] += 1
    return counts


@pytest.mark.parametrize("seat", [0, 1])
def test_heuristic_beats_random_in_both_seats(seat: int) -> None:
    counts = play_match(seat, games=300)
    assert counts["win"] > counts["loss"], counts
    assert counts["win"] > 0.5 * 300, counts


def test_prompt_states_the_offer_grammar_with_the_current_bounds():
    """The prompt gives each offer direction with its bounds instead of ~200 offers one by one."""
    env = spiral_envs.make("SimpleNegotiation-v1")
    env.reset(seed=0)
    prompt = str(env.observe("player_0"))
    assert "[Offer: n Wood -> m Gold] with 1 <= n <= 10, 1 <= m <= 10" in prompt
    assert "[Accept]" not in prompt.split("Your legal moves:")[1]
    assert len(env.infos["player_0"]["legal_actions"]) == 200
    env.step(spiral_envs.boxed("[Offer: 4 Wood -> 10 Gold]"))
    prompt = str(env.observe("player_1"))
    moves = prompt.split("Your legal moves:")[1]
    assert moves.startswith(" [Accept]; [Deny]; ")
    assert "[Offer: n Gold -> m Wood] with 1 <= n <= 10, 1 <= m <= 10" in moves
