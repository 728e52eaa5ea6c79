"""The PettingZoo protocol, checked on every registered game.

A trainer treats every game the same way: it samples free text, steps it, and reads rewards. These tests pin
down what it may rely on for any id in the registry (games added later, plugins included): PettingZoo's own
API and seed checks, determinism under a seed, zero-sum terminal rewards, that every listed legal move is
accepted, that no answer can crash `step()`, and that misuse fails loudly with a message naming the problem.
"""

from __future__ import annotations

import copy
import math
import random
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pettingzoo.test import api_test, seed_test

import spiral_envs
from spiral_envs import RandomAgent, TextGame, TextGameEnv, boxed, make
from spiral_envs.games.kuhn_poker import KuhnPoker
from spiral_envs.games.negotiation import SimpleNegotiation

ENV_IDS = [i for i in spiral_envs.registered_ids() if not i.startswith("textarena/")]
"""Our games and the installed plugins; TextArena's games have their own tests (test_textarena.py)."""

HUGE_ANSWERS = (
    "x" * 1_000_000,
    "\\boxed{" * 100_000,
    "[" * 300_000,
    "\\boxed{" + "y" * 1_000_000 + "}",
    "[" + "z" * 199 + "]" + " pad" * 200_000,
    "\\boxed{\\text{" + "[" * 50_000 + "}}",
)
BINARYISH = st.binary(max_size=300).map(lambda b: b.decode("utf-8", errors="surrogateescape"))
ANY_UNICODE = st.text(st.characters(exclude_categories=()), max_size=300)  # lone surrogates and controls too
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(params=ENV_IDS)
def env_id(request: pytest.FixtureRequest) -> str:
    return request.param


def legal_moves(env: Any) -> list[str]:
    return list(env.infos[env.agent_selection]["legal_actions"])


def play_random_moves(env: Any, count: int, rng: random.Random) -> None:
    """Advance a live game by up to `count` uniformly random legal moves."""
    for _ in range(count):
        if env.terminations[env.agent_selection]:
            return
        env.step(boxed(rng.choice(legal_moves(env))))


def game_over(env: Any) -> bool:
    return all(env.terminations.values()) or all(env.truncations.values())


def play_trace(env: Any, seed: int, agent_seed: int) -> list[tuple[Any, ...]]:
    """Everything a trainer observes in one game between two seeded random agents."""
    agents = {name: RandomAgent(agent_seed + i) for i, name in enumerate(env.possible_agents)}
    env.reset(seed=seed)
    trace: list[tuple[Any, ...]] = []
    for agent in env.agent_iter(max_iter=10_000):
        observation, reward, termination, truncation, info = env.last()
        trace.append((agent, str(observation), reward, termination, truncation, copy.deepcopy(info)))
        action = None if termination or truncation else agents[agent](str(observation), info)
        env.step(action)
        trace.append(("after", dict(env.rewards), copy.deepcopy(env.infos)))
    return trace


# -- PettingZoo's own checks ----------------------------------------------------------------------------------

# Text spaces are the point of these envs; api_test's hints towards numpy observations and Box spaces do not apply.
API_TEST_HINTS = [
    pytest.mark.filterwarnings("ignore:Observation is not a NumPy array:UserWarning"),
    pytest.mark.filterwarnings("ignore:Observation space for each agent probably:UserWarning"),
    pytest.mark.filterwarnings("ignore:Action space for each agent probably:UserWarning"),
]


@API_TEST_HINTS[0]
@API_TEST_HINTS[1]
@API_TEST_HINTS[2]
def test_api_test(env_id: str) -> None:
    api_test(make(env_id), num_cycles=200)


@API_TEST_HINTS[0]
@API_TEST_HINTS[1]
@API_TEST_HINTS[2]
def test_api_test_with_retries(env_id: str) -> None:
    # api_test steps random text, so almost every answer is invalid: this walks the retry path end to end.
    api_test(make(env_id, error_allowance=2), num_cycles=200)


def test_seed_test(env_id: str) -> None:
    seed_test(lambda: make(env_id), num_cycles=100)


# -- determinism and rewards ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_same_seed_same_game(env_id: str, seed: int) -> None:
    env = make(env_id)
    first = play_trace(env, seed, agent_seed=seed + 7)
    again = play_trace(env, seed, agent_seed=seed + 7)
    fresh = play_trace(make(env_id), seed, agent_seed=seed + 7)
    assert first == again
    assert first == fresh


@pytest.mark.parametrize("seed", range(8))
def test_rewards_zero_until_the_end_then_zero_sum(env_id: str, seed: int) -> None:
    env = make(env_id)
    env.reset(seed=seed)
    agents = {name: RandomAgent(seed * 10 + i) for i, name in enumerate(env.possible_agents)}
    steps = 0
    while not game_over(env):
        agent = env.agent_selection
        env.step(agents[agent](str(env.observe(agent)), env.infos[agent]))
        steps += 1
        assert steps < 10_000, "a game between random agents never ended"
        if not game_over(env):
            assert all(r == 0 for r in env.rewards.values()), env.rewards
    final = dict(env.rewards)
    assert set(final) == set(env.possible_agents)
    assert sum(final.values()) == 0
    assert set(final.values()) <= {1.0, -1.0, 0.0}
    assert all(info["invalid_move"] is False for info in env.infos.values())
    # What each agent reads through last() on its final turn is the same terminal reward.
    seen = {}
    for agent in env.agent_iter():
        _, reward, termination, _, info = env.last()
        assert termination
        assert info["winner"] in (*env.possible_agents, None)
        seen[agent] = reward
        env.step(None)
    assert seen == final
    assert env.agents == []


def test_winner_matches_rewards(env_id: str) -> None:
    for seed in range(6):
        env = make(env_id)
        env.reset(seed=seed)
        rng = random.Random(seed)
        play_random_moves(env, 10_000, rng)
        winner = env.infos[env.possible_agents[0]]["winner"]
        rewards = env.rewards
        if winner is None:
            assert rewards == dict.fromkeys(env.possible_agents, 0.0)
        else:
            assert rewards[winner] == 1.0
            assert min(rewards.values()) == -1.0


# -- legal moves ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_every_listed_legal_move_is_accepted(env_id: str, seed: int) -> None:
    env = make(env_id)
    env.reset(seed=seed)
    rng = random.Random(seed)
    sample_rng = random.Random(seed + 99)
    positions = 0
    while not game_over(env):
        mover = env.agent_selection
        info = env.infos[mover]
        legal = info["legal_actions"]
        assert legal, f"{mover} is to move but has no legal_actions"
        assert all(isinstance(m, str) and m for m in legal)
        assert "view" in info
        for other in env.agents:
            if other != mover:
                assert env.infos[other]["legal_actions"] == []
        tried = legal if len(legal) <= 40 else sample_rng.sample(legal, 40)
        for move in tried:
            branch = copy.deepcopy(env)
            branch.step(boxed(move))
            assert "error" not in branch.transcript[-1], branch.transcript[-1]
            assert branch.transcript[-1]["move"] == move
            assert not any(i.get("invalid_move") for i in branch.infos.values())
        env.step(boxed(rng.choice(legal)))
        positions += 1
    assert positions > 0


def test_legal_moves_are_listed_in_the_prompt(env_id: str) -> None:
    """Each legal move is in the prompt, or (a game with hundreds of them) the grammar that the game states."""
    env = make(env_id)
    env.reset(seed=3)
    rng = random.Random(3)
    while not game_over(env):
        prompt = str(env.observe(env.agent_selection))
        legal = legal_moves(env)
        assert f"Your legal moves: {env.game.legal_moves_text(env.state, legal)}" in prompt
        if type(env.game).legal_moves_text is TextGame.legal_moves_text:
            for move in legal[:40]:
                assert move in prompt
        play_random_moves(env, 1, rng)


# -- fuzz: no answer can break step() -------------------------------------------------------------------------


def check_clean_outcome(env: Any, mover: str, legal_before: list[str], penalty: float = -1.0) -> None:
    """After one step: either a legal move was played, or a clean invalid-move ending."""
    last = env.transcript[-1]
    assert last["agent"] == mover
    opponent = next(a for a in env.possible_agents if a != mover)
    if "error" in last:
        assert game_over(env)
        info = env.infos[mover]
        assert info["invalid_move"] is True
        assert isinstance(info["reason"], str) and info["reason"]
        assert env.infos[opponent]["winner"] == opponent
        assert env.rewards == {mover: penalty, opponent: -penalty}
    else:
        assert last["move"] in legal_before or isinstance(env.game, SimpleNegotiation)  # its talk is unlisted
        assert not any(i.get("invalid_move") for i in env.infos.values())


def fuzz_one(env_id: str, prefix_moves: int, answer: str) -> None:
    env = make(env_id)
    env.reset(seed=prefix_moves)
    play_random_moves(env, prefix_moves, random.Random(prefix_moves))
    if game_over(env):
        return
    mover = env.agent_selection
    legal = legal_moves(env)
    env.step(answer)
    check_clean_outcome(env, mover, legal)
    for agent in env.possible_agents:
        observation = env.observe(agent)
        assert env.observation_space(agent).contains(str(observation))


@pytest.mark.parametrize("env_id", ENV_IDS)
@FUZZ
@given(prefix_moves=st.integers(0, 4), answer=st.text() | BINARYISH | ANY_UNICODE)
def test_fuzz_any_text(env_id: str, prefix_moves: int, answer: str) -> None:
    fuzz_one(env_id, prefix_moves, answer)


@pytest.mark.parametrize("env_id", ENV_IDS)
@FUZZ
@given(data=st.data(), prefix_moves=st.integers(0, 4))
def test_fuzz_near_miss_answers(env_id: str, data: st.DataObject, prefix_moves: int) -> None:
    """Answers assembled from the move grammar's own pieces hit the parser's edge cases far more often."""
    env = make(env_id)
    env.reset(seed=prefix_moves)
    play_random_moves(env, prefix_moves, random.Random(prefix_moves))
    if game_over(env):
        return
    legal = legal_moves(env)
    pieces = [*legal, *(m.strip("[]") for m in legal), "\\boxed{", "}", "{", "[", "]", "\\text{", " ", "\n", "0", "x"]
    answer = "".join(data.draw(st.lists(st.sampled_from(pieces), max_size=12)))
    mover = env.agent_selection
    env.step(answer)
    check_clean_outcome(env, mover, legal)


@pytest.mark.parametrize("answer", HUGE_ANSWERS, ids=lambda a: f"{a[:8]!r}x{len(a)}")
def test_huge_answers(env_id: str, answer: str) -> None:
    fuzz_one(env_id, 1, answer)


@pytest.mark.parametrize(
    "answer",
    [*HUGE_ANSWERS[:4], "\\boxed{[bid" + " " * 2_000_000 + "x]}"],  # the last: issue 28's, for TextArena's too
    ids=lambda a: f"{a[:8]!r}x{len(a)}",
)
def test_huge_invalid_answer_keeps_retry_prompt_within_its_space(env_id: str, answer: str) -> None:
    """The error shown on a retry must not echo a megabyte answer back into the next prompt."""
    env = make(env_id, error_allowance=1)
    env.reset(seed=0)
    mover = env.agent_selection
    env.step(answer)
    assert env.agent_selection == mover
    observation = str(env.observe(mover))
    assert env.observation_space(mover).contains(observation)
    assert len(observation) < 100_000


# -- invalid answers: retries and penalties -------------------------------------------------------------------


@pytest.mark.parametrize("offender_moves_second", [False, True])
def test_error_allowance_two_retries_then_loss(env_id: str, offender_moves_second: bool) -> None:
    env = make(env_id, error_allowance=2)
    env.reset(seed=0)
    if offender_moves_second:
        play_random_moves(env, 1, random.Random(0))
    mover = env.agent_selection
    opponent = next(a for a in env.possible_agents if a != mover)
    for retries_left in (1, 0):
        env.step("I refuse to commit to anything.")
        assert env.agent_selection == mover
        assert not game_over(env)
        assert env.rewards == dict.fromkeys(env.possible_agents, 0.0)
        info = env.infos[mover]
        assert info["invalid_move"] is True
        assert info["retries_left"] == retries_left
        assert info["legal_actions"] == legal_moves(env) and info["legal_actions"]
        observation = str(env.observe(mover))
        assert "invalid" in observation
        assert info["reason"] in observation
        assert f"Tries left after this one: {retries_left}" in observation
    env.step("still nothing")
    assert game_over(env)
    assert env.rewards == {mover: -1.0, opponent: 1.0}
    assert env.infos[mover]["invalid_move"] is True
    assert env.infos[opponent]["winner"] == opponent


def test_a_legal_move_restores_the_allowance(env_id: str) -> None:
    env = make(env_id, error_allowance=1)
    env.reset(seed=0)
    first = env.agent_selection
    env.step("nothing")
    assert env.infos[first]["retries_left"] == 0
    env.step(boxed(legal_moves(env)[0]))
    assert "error" not in env.transcript[-1]
    assert "Your previous answer was invalid" not in str(env.observe(first))  # the error shown on a retry is gone
    if game_over(env):
        return
    second = env.agent_selection
    env.step("nothing")
    assert not game_over(env)
    assert env.infos[second]["retries_left"] == 0


def test_no_allowance_first_invalid_answer_ends_game(env_id: str) -> None:
    env = make(env_id)
    env.reset(seed=0)
    mover = env.agent_selection
    legal = legal_moves(env)
    env.step("\\boxed{[definitely not a move]}")
    check_clean_outcome(env, mover, legal)
    assert "error" in env.transcript[-1]


def test_custom_invalid_move_penalty(env_id: str) -> None:
    env = make(env_id, invalid_move_penalty=-1.5)
    env.reset(seed=0)
    mover = env.agent_selection
    legal = legal_moves(env)
    env.step("no move at all")
    check_clean_outcome(env, mover, legal, penalty=-1.5)
    opponent = next(a for a in env.possible_agents if a != mover)
    assert env.rewards == {mover: -1.5, opponent: 1.5}


def test_the_default_penalty_is_the_worst_legal_result(env_id: str) -> None:
    env = make(env_id)
    assert env.invalid_move_penalty == env.game.worst_legal_return <= -1.0


@pytest.mark.parametrize("penalty", [0, -0.5])
def test_a_penalty_above_the_worst_legal_result_is_refused(env_id: str, penalty: float) -> None:
    """An invalid answer may never score better than losing by the rules (a draw, with 0, would)."""
    worst = make(env_id).game.worst_legal_return
    name = type(make(env_id).game).__name__
    expected = f"invalid_move_penalty={penalty:g} is above {name}'s worst legal result {worst:g}"
    with pytest.raises(ValueError, match=re.escape(expected) + rf".*use invalid_move_penalty <= {worst:g}"):
        make(env_id, invalid_move_penalty=penalty)


class UndeclaredChipsKuhn(KuhnPoker):
    """A game that returns +-2 at a showdown after a bet and a call, but declares the default worst result, -1."""

    def __init__(self) -> None:
        super().__init__(num_rounds=1, scoring="chips")
        self.worst_legal_return = -1.0


class OwnPenaltyAboveWorstKuhn(KuhnPoker):
    """A game whose own invalid-move penalty (-1) is above its worst legal result (-2 in one chips round)."""

    invalid_move_penalty = -1.0

    def __init__(self) -> None:
        super().__init__(num_rounds=1, scoring="chips")


def test_a_games_own_penalty_above_its_worst_legal_result_is_refused() -> None:
    expected = "OwnPenaltyAboveWorstKuhn.invalid_move_penalty=-1 is above its worst legal result -2"
    with pytest.raises(ValueError, match=re.escape(expected) + ".*set it to -2 or lower"):
        TextGameEnv(OwnPenaltyAboveWorstKuhn())
    assert TextGameEnv(OwnPenaltyAboveWorstKuhn(), invalid_move_penalty=-2).invalid_move_penalty == -2.0
    with pytest.raises(ValueError, match=r"use invalid_move_penalty <= -2$"):  # unset would fail too: not offered
        TextGameEnv(OwnPenaltyAboveWorstKuhn(), invalid_move_penalty=-1.5)


def test_a_legal_loss_below_the_penalty_warns_that_the_worst_result_is_undeclared() -> None:
    """The penalty of a game that declares too high a worst result cannot be checked at `make`: the first game
    that returns less says so."""
    env = TextGameEnv(UndeclaredChipsKuhn())
    assert env.invalid_move_penalty == -1.0
    env.reset(seed=0)
    env.step("\\boxed{[bet]}")
    with pytest.warns(
        UserWarning, match=r"UndeclaredChipsKuhn returned -2 to a player, below the invalid-move penalty -1"
    ):
        env.step("\\boxed{[call]}")
    assert sorted(env.rewards.values()) == [-2.0, 2.0]


# -- misuse fails loudly --------------------------------------------------------------------------------------


def finished_env(env_id: str) -> Any:
    env = make(env_id)
    env.reset(seed=0)
    env.step("not a move")
    assert game_over(env)
    return env


@pytest.mark.parametrize(
    ("seed", "error", "message"),
    [
        (-1, ValueError, r"reset\(seed=-1\): a seed must be >= 0"),
        ("abc", TypeError, r"reset\(seed='abc'\): a seed is an int >= 0 or None, not str"),
        ("7", TypeError, r"not str"),
        (1.5, TypeError, r"not float"),
        (True, TypeError, r"not bool"),
        (np.bool_(True), TypeError, r"not bool"),
    ],
)
def test_reset_rejects_what_is_not_a_seed(env_id: str, seed: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        make(env_id).reset(seed=seed)


def test_numpy_integers_are_ordinary_seeds(env_id: str) -> None:
    env = make(env_id)
    for numpy_seed in (np.int64(3), np.uint8(3), np.int32(3)):
        env.reset(seed=numpy_seed)
        numpy_game = str(env.observe(env.agent_selection)), env.infos
        env.reset(seed=3)
        assert (str(env.observe(env.agent_selection)), env.infos) == numpy_game


def test_step_before_reset(env_id: str) -> None:
    with pytest.raises(RuntimeError, match=r"before reset"):
        make(env_id).step("\\boxed{x}")


def test_step_text_on_finished_game(env_id: str) -> None:
    env = finished_env(env_id)
    with pytest.raises(ValueError, match=r"game is over.*step\(None\)"):
        env.step("\\boxed{x}")


def test_step_after_every_agent_left(env_id: str) -> None:
    env = finished_env(env_id)
    while env.agents:
        env.step(None)
    for action in ("\\boxed{x}", None):
        with pytest.raises(RuntimeError, match=r"every agent has left.*reset"):
            env.step(action)


@pytest.mark.parametrize("action", [None, 3, b"[0]", ["[0]"]])
def test_step_non_str_action(env_id: str, action: Any) -> None:
    env = make(env_id)
    env.reset(seed=0)
    with pytest.raises(TypeError, match=rf"str.*{type(action).__name__}"):
        env.step(action)


def test_make_unknown_id_lists_known_ids_closest_first(env_id: str) -> None:
    name, version = env_id.rsplit("-v", 1)
    typo = f"{name}-v{int(version) + 1}"
    if typo in ENV_IDS:
        pytest.skip(f"{typo} is registered")
    with pytest.raises(KeyError, match=re.escape(typo)) as excinfo:
        make(typo)
    message = str(excinfo.value)
    listed = message.split("closest first: ", 1)[1].rstrip("'\"").split(" (and ")[0].split(", ")
    known = spiral_envs.registered_ids()
    assert len(listed) == min(len(known), spiral_envs.registry.MAX_LISTED_IDS)
    assert set(listed) <= set(known)
    assert listed[0] == env_id


@pytest.mark.parametrize(
    ("typo", "meant"), [("histroy", "history"), ("error_allowence", "error_allowance"), ("rendermode", "render_mode")]
)
def test_make_misspelt_option_names_it_and_suggests(env_id: str, typo: str, meant: str) -> None:
    with pytest.raises(TypeError, match=rf"no option '{typo}' \(did you mean '{meant}'\?\)"):
        make(env_id, **{typo: None})


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("history", "foo", ValueError),
        ("history", "", ValueError),
        ("error_allowance", -1, ValueError),
        ("error_allowance", 1.5, ValueError),
        ("error_allowance", True, ValueError),
        ("invalid_move_penalty", 1, ValueError),
        ("invalid_move_penalty", 0.01, ValueError),
        ("invalid_move_penalty", "-1", TypeError),
        ("invalid_move_penalty", math.nan, ValueError),
        ("invalid_move_penalty", -math.inf, ValueError),
        ("render_mode", "human", ValueError),
    ],
)
def test_bad_option_values_name_the_option(env_id: str, option: str, value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=option):
        make(env_id, **{option: value})


# -- options that change what is shown -----------------------------------------------------------------------


def test_render_ansi_returns_text(env_id: str) -> None:
    env = make(env_id, render_mode="ansi")
    env.reset(seed=0)
    before = env.render()
    assert isinstance(before, str) and before
    play_random_moves(env, 10_000, random.Random(0))
    after = env.render()
    assert isinstance(after, str)
    assert "Game over" in after


def test_full_history_differs_from_current(env_id: str) -> None:
    observations = {}
    for history in ("full", "current"):
        env = make(env_id, history=history)
        env.reset(seed=5)
        play_random_moves(env, 4, random.Random(5))  # identical moves in both modes; may end the game
        observations[history] = str(env.observe(env.possible_agents[0]))
    assert observations["full"] != observations["current"]
    assert len(observations["full"]) > len(observations["current"])
