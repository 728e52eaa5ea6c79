"""The texts and the caches that keep them cheap: every prompt is the text pinned here, byte for byte; cached legal
moves, parsed moves, histories and views equal what the uncached code gives, in every position random play
reaches; observations are plain strings with numpy's dtype."""

from __future__ import annotations

import hashlib
import itertools
import random

import pytest

import spiral_envs
from spiral_envs.core import TextGame
from spiral_envs.games.negotiation_moves import read_move

GAMES = {
    "TicTacToe-v0": {},
    "KuhnPoker-v1": {"num_rounds": 5},
    "SimpleNegotiation-v1": {"max_turns": 10},
}


def positions(env_id: str, games: int):
    """(env, state) at every turn of `games` random games."""
    env = spiral_envs.make(env_id, **GAMES[env_id])
    agent = spiral_envs.RandomAgent(7)
    for seed in range(games):
        env.reset(seed=seed)
        for _agent in env.agent_iter():
            observation, _, termination, truncation, info = env.last()
            if termination or truncation:
                env.step(None)
                continue
            yield env, env.state
            env.step(agent(str(observation), info))


PINNED_PROMPTS = {
    ("TicTacToe-v0", "current"): "cc2b3fbdc097fcaf6f5fa736168a1eb41299b5eb977a6c230a49b3a6a287cdd9",
    ("TicTacToe-v0", "full"): "cd0c3a853ff2819fb888866a7acacb84ad266a1c51287a3c41bc37490a295799",
    ("KuhnPoker-v1", "full"): "82bb8ad875f65134337e86b145c209b59ca160e0e7decb33053e23d60e9aa229",
    ("KuhnPoker-v1", "current"): "e0a6c2ce44f2b18c2e9aa161de374435d9fe31904b54393b06263dc0890e3b25",
    ("SimpleNegotiation-v1", "full"): "d5c5c352bddde4f92972787d5907756d8df3e5179e2e8184928340a13034dfdf",
    ("SimpleNegotiation-v1", "current"): "3cfc3d73d7bd8f39172ade45c5a320c064cba2b4bdcb833fce05c1dd0706d75a",
}
"""sha256 of every prompt both players see at every turn of 40 seeded games, with random answers and some
invalid ones (one retry allowed); a change of any prompt text must change these on purpose."""


def prompts_digest(env_id: str, history: str) -> str:
    digest = hashlib.sha256()
    env = spiral_envs.make(env_id, history=history, error_allowance=1, **GAMES[env_id])
    for seed in range(40):
        env.reset(seed=seed)
        agent, noise = spiral_envs.RandomAgent(seed), random.Random(seed)
        for _agent in env.agent_iter():
            observation, _, termination, truncation, info = env.last()
            for name in env.agents:
                digest.update(str(env.observe(name)).encode())
            draw = noise.random()
            if termination or truncation:
                env.step(None)
            else:
                env.step(agent(str(observation), info) if draw > 0.1 else "no box" if draw < 0.05 else "\\boxed{[ x ]}")
    return digest.hexdigest()


@pytest.mark.parametrize(("env_id", "history"), PINNED_PROMPTS)
def test_every_prompt_is_the_pinned_text(env_id, history):
    assert prompts_digest(env_id, history) == PINNED_PROMPTS[env_id, history]


@pytest.mark.parametrize("env_id", GAMES)
def test_listed_moves_are_each_legal_action_formatted_and_read_back_as_it(env_id):
    for env, state in positions(env_id, 60):
        game = env.game
        legal = list(state.legal_actions())
        texts = list(game.format_legal_actions(state))
        assert texts == [game.format_action(a) for a in legal]
        assert texts == TextGame.format_legal_actions(game, state)  # the default, uncached
        assert env.infos[env.agent_selection]["legal_actions"] == texts
        for action, text in random.Random(len(texts)).sample(list(zip(legal, texts)), min(5, len(texts))):
            assert game.parse_action(text, state) == action


def test_a_negotiation_move_written_as_listed_is_what_the_grammar_reads():
    for _env, state in positions("SimpleNegotiation-v1", 40):
        for action in state.legal_actions()[:3] + state.legal_actions()[-3:]:
            read = read_move(action.text)
            assert (read, read.message, read.text) == (action, action.message, action.text)


@pytest.mark.parametrize("env_id", GAMES)
def test_an_env_pickled_or_copied_mid_game_plays_on_exactly_as_the_original(env_id):
    import copy
    import pickle

    def rest_of_game(env):
        agent, seen = spiral_envs.RandomAgent(3), []
        for _agent in env.agent_iter():
            observation, reward, termination, truncation, info = env.last()
            seen.append((str(observation), reward))
            env.step(None if termination or truncation else agent(str(observation), info))
        return seen

    env = spiral_envs.make(env_id, **GAMES[env_id])
    env.reset(seed=11)
    for _ in range(3):  # into the game, with a history rendered
        observation, _, _, _, info = env.last()
        env.step(spiral_envs.RandomAgent(0)(str(observation), info))
    clones = [pickle.loads(pickle.dumps(env)), copy.deepcopy(env)]
    expected = rest_of_game(env)
    for clone in clones:
        assert rest_of_game(clone) == expected


def test_a_game_that_says_it_has_no_chance_and_draws_is_told_so():
    from spiral_envs import TextGameEnv
    from spiral_envs.games.tictactoe import TicTacToe, TicTacToeState

    class LyingTicTacToe(TicTacToe):  # chance = False inherited, yet it draws a first cell
        def new_state(self, rng):
            state = TicTacToeState()
            state.apply_action(rng.randrange(9))
            return state

    with pytest.raises(RuntimeError, match=r"LyingTicTacToe sets chance = False, but its game used rng\.randrange"):
        TextGameEnv(LyingTicTacToe()).reset(seed=0)

    class HonestTicTacToe(LyingTicTacToe):
        chance = True

    env = TextGameEnv(HonestTicTacToe())
    boards = set()
    for seed in (0, 1, 2, 0):
        env.reset(seed=seed)
        boards.add((seed, env.state.board))
    assert len(boards) == 3  # seed 0 twice, the same board: a seeded stream, as for every game with chance


@pytest.mark.parametrize("env_id", GAMES)
def test_an_observation_is_a_str_that_carries_numpy_s_text_dtype(env_id):
    import pickle

    import numpy as np

    env = spiral_envs.make(env_id, **GAMES[env_id])
    env.reset(seed=0)
    observation = env.observe(env.agent_selection)
    assert isinstance(observation, str) and type(str(observation)) is str and str(observation) == observation
    assert observation.dtype == np.str_(observation).dtype == np.dtype(f"<U{len(observation)}")
    assert env.observation_space(env.agent_selection).contains(observation)
    assert pickle.loads(pickle.dumps(observation)) == observation  # crosses a process boundary as it is


def test_views_are_the_caller_s_to_edit_and_negotiation_messages_follow_the_moves():
    from spiral_envs.games.negotiation import VALUES

    for env, state in positions("SimpleNegotiation-v1", 30):
        view = env.infos[env.agent_selection]["view"]
        player, names = view["player"], view["resources"]
        # Each view is built from cached parts: the edits made to the last one below must show up nowhere.
        assert view["messages"] == [(m.player, m.action.message or m.action.text) for m in state.moves]
        assert view["inventory"] == dict(zip(names, state.inventories[player], strict=True))
        assert view["opponent_inventory"] == dict(zip(names, state.inventories[1 - player], strict=True))
        assert view["values"] == dict(zip(names, VALUES[player], strict=True))
        pending = view["pending_offer"]
        if state.pending is not None:
            give, get = state.pending[1].give, state.pending[1].get
            assert pending["give"] == {n: q for n, q in zip(names, give, strict=True) if q}
            assert pending["get"] == {n: q for n, q in zip(names, get, strict=True) if q}
            pending["give"]["Wood"] = pending["get"]["Wood"] = -1
        for name in ("inventory", "values", "opponent_inventory"):
            view[name]["Wood"] = -1
        view["messages"].append((9, "edited"))


@pytest.mark.parametrize("env_id", GAMES)
def test_two_games_sharing_one_text_layer_read_as_each_played_alone(env_id):
    """A game's text caches (Kuhn Poker's rendered rounds, a negotiation's history) hold nothing of one game
    that shows in the other's prompts, when two envs share one `TextGame` and take turns."""
    from spiral_envs import TextGameEnv

    def prompts(env, seed, agent):
        env.reset(seed=seed)
        for _agent in env.agent_iter():
            observation, _, termination, truncation, info = env.last()
            yield [str(env.observe(a)) for a in env.agents]
            env.step(None if termination or truncation else agent(str(observation), info))

    for seed in range(20):
        alone = [
            list(prompts(spiral_envs.make(env_id, **GAMES[env_id]), seed + s, spiral_envs.RandomAgent(s)))
            for s in (0, 1)
        ]
        first = spiral_envs.make(env_id, **GAMES[env_id])
        second = TextGameEnv(first.game, history=first.history)
        turns = itertools.zip_longest(  # the two games move in turn, until both are over
            prompts(first, seed, spiral_envs.RandomAgent(0)), prompts(second, seed + 1, spiral_envs.RandomAgent(1))
        )
        together = list(zip(*turns))
        assert [[p for p in game if p is not None] for game in together] == alone
