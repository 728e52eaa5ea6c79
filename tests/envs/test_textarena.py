"""Every two-player TextArena game through spiral_envs: the same PettingZoo protocol as our games, with the
chance, history, turn-limit and invalid-move behaviour a trainer needs (see `spiral_envs.textarena_games`).

The games TextArena cannot build here are listed with the reason, and asserted to fail for it: when one of
them starts to build (a TextArena release, Python 3.12), the test says so and the table in the README moves.
"""

from __future__ import annotations

import random
import re
import sys
import threading
import warnings

import pytest
from game_helpers import fastest_step
from pettingzoo.test import api_test, seed_test

import spiral_envs
from spiral_envs import RandomAgent, boxed, make, play_game
from spiral_envs.parsing import QUOTE_CHARS
from spiral_envs.spaces import FreeText
from spiral_envs.textarena_games import MAX_MOVE_CHARS, PREFIX, TextArenaUnavailable, textarena_ids

pytest.importorskip("textarena")

BASE_IDS = [PREFIX + i for i in textarena_ids() if re.fullmatch(r".*-v\d+", i)]
"""One id per game: the variants ("-large", "-long") differ from it only by their options."""
PY311 = sys.version_info < (3, 12)
UNAVAILABLE = {
    "Checkers-v0": ("f-strings that need Python 3.12", PY311),
    "Chess-v0": ("f-strings that need Python 3.12", PY311),
    "IteratedStagHunt-v0": ("f-strings that need Python 3.12", PY311),
    "ReverseTicTacToe-v0": ("f-strings that need Python 3.12", PY311),
    "Debate-v0": ("an OpenRouter API key (an LLM jury)", True),
    "ScenarioPlanning-v0": ("an OpenRouter API key (an LLM jury)", True),
    "DontSayIt-v0": ("NLTK's word list, downloaded at run time", True),
    "LetterAuction-v0": ("NLTK's word list, downloaded at run time", True),
    "SpellingBee-v0": ("NLTK's word list, downloaded at run time", True),
    "WordChains-v0": ("NLTK's word list, downloaded at run time", True),
    "UsedCarNegotiation-v0": ("a data file TextArena 0.7.4 does not ship (blue_book.txt)", True),
}
"""TextArena ids that TextArena cannot build on these machines: (the reason, whether it applies here)."""
PLAYABLE = [i for i in BASE_IDS if not UNAVAILABLE.get(i.removeprefix(PREFIX), ("", False))[1]]
NOT_HERE = [i for i in BASE_IDS if i not in PLAYABLE]
VARIANTS = [
    PREFIX + i
    for i in textarena_ids()
    if PREFIX + i not in BASE_IDS and re.sub(r"(-v\d+).*", r"\1", PREFIX + i) in PLAYABLE
]


def test_the_two_player_games_are_registered() -> None:
    ids = spiral_envs.registered_ids()
    assert len(BASE_IDS) >= 45
    assert set(BASE_IDS) <= set(ids)
    for game in ("TicTacToe-v0", "KuhnPoker-v0", "SimpleNegotiation-v0", "Snake-v0", "PigDice-v0"):
        assert PREFIX + game in ids
    assert not any(i.endswith(("-raw", "-train")) for i in ids)  # TextArena's wrapper variants: ours replace them
    assert PREFIX + "Sudoku-v0" not in ids  # a one-player game


class LegalLooking(FreeText):
    """`api_test`'s action sampler: a move the game's latest message offers, boxed, or now and then free text."""

    def __init__(self, env: spiral_envs.TextGameEnv) -> None:
        super().__init__(env.action_spaces[env.possible_agents[0]].max_length)
        self.env = env

    def sample(self, mask=None, probability=None) -> str:
        legal = self.env.infos.get(self.env.agent_selection, {}).get("legal_actions", [])
        if legal and self.np_random.random() < 0.9:
            return boxed(legal[int(self.np_random.integers(len(legal)))])
        return super().sample()


def with_legal_looking_moves(env: spiral_envs.TextGameEnv) -> spiral_envs.TextGameEnv:
    space = LegalLooking(env)
    env.action_spaces = dict.fromkeys(env.possible_agents, space)
    return env


@pytest.fixture(params=PLAYABLE)
def env_id(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.mark.filterwarnings("ignore::UserWarning")  # api_test's hints towards numpy observations
def test_api_test_random_text(env_id: str) -> None:
    api_test(make(env_id, error_allowance=1), num_cycles=100)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_api_test_legal_looking_moves(env_id: str) -> None:
    api_test(with_legal_looking_moves(make(env_id)), num_cycles=300)


def test_seed_test(env_id: str) -> None:
    seed_test(lambda: with_legal_looking_moves(make(env_id)), num_cycles=100)


def play(env, seed: int, max_moves: int = 60, after_each_move=None) -> list[tuple[str, str]]:
    """A seeded game of legal-looking moves: every prompt and answer, in order; `after_each_move()`, if
    given, runs between moves."""
    rng = random.Random(seed)
    env.reset(seed=seed)
    seen = []
    for agent in env.agent_iter(max_iter=max_moves):
        _, _, terminated, truncated, info = env.last()
        if terminated or truncated:
            env.step(None)
            continue
        legal = info["legal_actions"]
        answer = boxed(rng.choice(legal)) if legal else "\\boxed{[pass]}"
        seen.append((str(env.observe(agent)), answer))
        env.step(answer)
        if after_each_move is not None:
            after_each_move()
    return seen


def test_a_seed_replays_the_game_exactly(env_id: str) -> None:
    env = make(env_id)
    first = play(env, seed=3)
    play(env, seed=4)
    assert play(env, seed=3) == first
    assert play(make(env_id), seed=3) == first


@pytest.mark.parametrize("env_id", VARIANTS)
def test_every_variant_plays_and_replays(env_id: str) -> None:
    env = make(env_id)
    first = play(env, seed=1, max_moves=40)
    assert first
    assert play(env, seed=1, max_moves=40) == first


@pytest.mark.parametrize("env_id", ["textarena/KuhnPoker-v0", "textarena/PigDice-v0", "textarena/Battleship-v0"])
def test_interleaved_games_do_not_change_each_other(env_id: str) -> None:
    alone = play(make(env_id), seed=5)
    b = make(env_id)
    b.reset(seed=6)
    random.seed(0)  # what the global stream holds must not matter either

    def other_game_moves():  # a move of the other game, and a draw from the global stream, between every two
        if b.agents:
            _, _, done, _, b_info = b.last()
            b.step(None if done else boxed((b_info["legal_actions"] or ["[x]"])[0]))
        random.random()

    assert play(make(env_id), seed=5, after_each_move=other_game_moves) == alone


def test_chance_is_seeded() -> None:
    deals = set()
    for seed in range(8):
        env = make("textarena/KuhnPoker-v0")
        env.reset(seed=seed)
        deals.add(str(env.observe(env.agent_selection)))
    assert len(deals) > 1  # the deal depends on the seed ...
    env = make("textarena/KuhnPoker-v0")
    env.reset(seed=1)
    first = str(env.observe(env.agent_selection))
    random.seed(123)
    env.reset(seed=1)
    assert str(env.observe(env.agent_selection)) == first  # ... and on nothing else


def test_each_game_starts_with_a_clean_history() -> None:
    env = make("textarena/TicTacToe-v0")
    for seed in range(3):
        play(env, seed=seed, max_moves=4)
    env.reset(seed=0)
    prompt = str(env.observe(env.agent_selection))
    assert prompt.count("You are Player 0 in Tic Tac Toe") == 1
    assert "[Player" not in prompt  # no move of an earlier game


@pytest.mark.parametrize("max_turns", [1, 4, 10])
def test_a_turn_limit_of_n_plays_at_most_n_moves(max_turns: int) -> None:
    env = make("textarena/SimpleNegotiation-v0", max_turns=max_turns)
    env.reset(seed=0)
    moves = 0
    while env.agents:
        _, _, terminated, _, _ = env.last()
        if terminated:
            env.step(None)
            continue
        env.step("I hold my resources. \\boxed{[Deny]}")  # a valid move that never ends the game by itself
        moves += 1
    assert moves == max_turns
    assert env.outcome is not None and not env.outcome["invalid_move"]


def test_textarenas_invalid_move_maps_onto_our_penalty_and_allowance() -> None:
    env = make("textarena/TicTacToe-v0", error_allowance=1, invalid_move_penalty=-2.0)
    env.reset(seed=0)
    env.step("\\boxed{4}")  # a bare move is handed to TextArena bracketed
    mover = env.agent_selection
    env.step("\\boxed{4}")  # the cell is taken: TextArena says invalid, our allowance gives a retry
    assert env.agent_selection == mover
    assert env.infos[mover]["invalid_move"] and env.infos[mover]["retries_left"] == 0
    assert "Your previous answer was invalid" in str(env.observe(mover))
    assert "occupied" in env.infos[mover]["reason"]
    env.step("\\boxed{[4]}")  # again: the game is over, with our penalty
    assert env.outcome["invalid_move"]
    assert env._cumulative_rewards == {mover: -2.0, ("player_0" if mover == "player_1" else "player_1"): 2.0}


def test_an_answer_with_no_move_is_invalid() -> None:
    env = make("textarena/KuhnPoker-v0")
    env.reset(seed=0)
    env.step("I am not sure what to do")
    assert env.outcome["invalid_move"]
    assert "no move found" in env.outcome["reason"]


def test_the_move_is_read_with_our_parser() -> None:
    env = make("textarena/KuhnPoker-v0")
    env.reset(seed=0)
    env.step("I could [bet], but I will check. \\boxed{\\text{check}}")
    assert env.transcript[-1]["move"] == "[check]"
    assert not env.terminations[env.agent_selection]


def test_rewards_are_zero_sum_and_reported(env_id: str) -> None:
    env = make(env_id)
    play(env, seed=0, max_moves=400)
    if env.outcome is not None:
        assert "zero_sum" in env.outcome
        returns = list(env._cumulative_rewards.values())
        assert (sum(returns) == 0) == env.outcome["zero_sum"]


def test_a_game_with_rewards_that_are_not_zero_sum_is_reported() -> None:
    env = make("textarena/SimpleNegotiation-v0", max_turns=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a zero-sum ending warns nothing
        play(env, seed=0)
    assert env.outcome["zero_sum"]
    state = env.state
    state.env.state.rewards = {0: 1, 1: 1}  # what a cooperative ending would score
    with pytest.warns(UserWarning, match="not zero-sum"):
        assert state.score() == {"zero_sum": False}


@pytest.mark.parametrize("env_id", NOT_HERE)
def test_the_games_that_cannot_be_built_here_say_why(env_id: str) -> None:
    with pytest.raises(TextArenaUnavailable, match=re.escape(env_id)):
        make(env_id)


def test_unknown_ids_and_options_get_our_errors() -> None:
    with pytest.raises(spiral_envs.UnknownEnvError, match=r"closest first: textarena/Nim-v0"):
        make("textarena/Nimm-v0")
    with pytest.raises(TypeError, match=r"no option 'pile' \(did you mean 'piles'\?\)"):
        make("textarena/Nim-v0", pile=[1, 2])


def test_a_textarena_game_plays_against_our_random_agent() -> None:
    agents = {"player_0": RandomAgent(0), "player_1": RandomAgent(1)}
    outcome = play_game(make("textarena/TicTacToe-v0"), agents, seed=0)
    assert outcome.winner in ("player_0", "player_1", None)
    assert not outcome.invalid_move  # the random agent plays the moves the board offers


def test_two_training_steps_on_a_textarena_game_and_ours(quick_model, tmp_path) -> None:
    from helpers import small_config

    from spiral_train.metrics import read_metrics
    from spiral_train.trainer import Trainer

    config = small_config(
        quick_model,
        2,
        env_ids=["textarena/TicTacToe-v0", "KuhnPoker-v1"],
        eval_env_ids=["textarena/TicTacToe-v0", "textarena/KuhnPoker-v0"],
        eval_every=2,
        eval_games=4,
        eval_opponents=["random", "strong"],
    )
    Trainer(config, tmp_path).run()
    records = read_metrics(tmp_path)
    last = records[-1]
    assert last["step"] == 2
    for game in ("textarena:TicTacToe-v0", "textarena:KuhnPoker-v0"):
        assert last[f"eval/{game}/random/games"] == 4
        assert f"eval/{game}/strong/games" not in last  # no scripted expert for a TextArena game
    assert any(k.startswith("rae/baseline/textarena:TicTacToe-v0/") for r in records for k in r)


# -- hostile answers: TextArena's regexes backtrack, so it only ever reads a move-sized string ----------------

HOSTILE = {
    "bid-spaces": lambda n: "\\boxed{[bid" + " " * n + "x]}",  # LiarsDice's and ColonelBlotto's regexes
    "digit-spaces": lambda n: "\\boxed{[1" + " " * n + "x]}",  # UltimateTicTacToe's
    "digits": lambda n: "\\boxed{[" + "1" * n + "x]}",  # Othello's
    "letters": lambda n: "\\boxed{" + "a" * n + "}",  # ConnectFour's `.*\[...\].*`
}
"""Answers that took TextArena 0.7.4 time quadratic in n (4.4 s at n = 20,000 for LiarsDice's bid)."""
HOSTILE_GAMES = [
    PREFIX + g for g in ("LiarsDice-v0", "Othello-v0", "UltimateTicTacToe-v0", "ColonelBlotto-v0", "ConnectFour-v0")
]


def moves_reaching_textarena(env: spiral_envs.TextGameEnv) -> list[str]:
    """Every string the game's TextArena env is stepped with from now on, recorded as its `step` is called."""
    seen: list[str] = []
    ta_env = env.state.env
    step = ta_env.step

    def recording_step(action: str):
        seen.append(action)
        return step(action)

    ta_env.step = recording_step
    return seen


@pytest.mark.parametrize("env_id", HOSTILE_GAMES)
@pytest.mark.parametrize("shape", list(HOSTILE))
def test_a_hostile_answer_never_reaches_textarena(env_id: str, shape: str) -> None:
    env = make(env_id)
    env.reset(seed=0)
    seen = moves_reaching_textarena(env)
    mover = env.agent_selection
    env.step(HOSTILE[shape](1_000_000))
    assert seen == []  # invalid before TextArena reads it
    assert env.outcome["invalid_move"] and env.outcome["offender"] == mover
    assert f"a move may hold at most {MAX_MOVE_CHARS:,}" in env.outcome["reason"]
    assert len(env.outcome["reason"]) < 2 * QUOTE_CHARS + 200


@pytest.mark.parametrize("env_id", HOSTILE_GAMES)
def test_a_move_at_the_limit_reaches_textarena_whole(env_id: str) -> None:
    env = make(env_id, error_allowance=1)
    env.reset(seed=0)
    seen = moves_reaching_textarena(env)
    move = "[bid" + " " * (MAX_MOVE_CHARS - 6) + "x]"
    env.step(boxed(move))
    assert seen == [move]
    assert env.infos[env.agent_selection]["invalid_move"]  # TextArena's own verdict


def test_reading_hostile_answers_takes_time_linear_in_their_length() -> None:
    # The one timed check: 8x the length, every hostile shape in every game above, the fastest of three tries.
    # Linear reading takes ~8x the time; TextArena's regexes on the whole move took ~64x (and minutes at 4 MB).
    def fastest(n: int) -> float:
        total = 0.0
        for env_id in HOSTILE_GAMES:
            env = make(env_id)
            for shape in HOSTILE.values():
                total += fastest_step(env, shape(n))
        return total

    small, large = fastest(250_000), fastest(2_000_000)
    assert large < 24 * small + 0.05, f"{small:.3f} s at 0.5 MB, {large:.3f} s at 4 MB"


@pytest.mark.parametrize(
    ("env_id", "length"),
    [
        *((game, n) for game in [*HOSTILE_GAMES, PREFIX + "KuhnPoker-v0"] for n in (2_000_000, MAX_MOVE_CHARS - 6)),
        (PREFIX + "SimpleNegotiation-v0", 2_000_000),  # at the limit, its talk is a valid move
    ],
)
def test_a_retry_prompt_after_a_huge_answer_stays_inside_the_observation_space(env_id: str, length: int) -> None:
    # TextArena echoes a move it reads, and LiarsDice's reason quotes it again: a 2 MB answer made a 4 MB prompt.
    env = make(env_id, error_allowance=1)
    env.reset(seed=0)
    mover = env.agent_selection
    before = len(str(env.observe(mover)))
    env.step(HOSTILE["bid-spaces"](length))
    assert env.agent_selection == mover and env.infos[mover]["invalid_move"]
    prompt = str(env.observe(mover))
    assert env.observation_space(mover).contains(prompt)
    assert len(prompt) < before + MAX_MOVE_CHARS + 3 * QUOTE_CHARS + 500  # at most one echo of the move, whole
    assert len(env.infos[mover]["reason"]) < 3 * QUOTE_CHARS + 500  # the reason quotes it shortened


# -- threads ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["textarena/KuhnPoker-v0", "textarena/LiarsDice-v0", "textarena/PigDice-v0"])
def test_games_in_threads_play_as_they_do_alone(env_id: str) -> None:
    seeds = range(40)
    alone = {seed: play(make(env_id), seed=seed) for seed in seeds}
    inside = {name: getattr(random, name) for name in ("random", "shuffle", "randint", "choice")}
    together: dict[int, list[tuple[str, str]]] = {}
    start = threading.Barrier(4)

    def worker(first: int) -> None:
        env = make(env_id)
        start.wait()
        for seed in seeds[first::4]:
            together[seed] = play(env, seed=seed)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter allows
    try:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switch)
    assert {name: getattr(random, name) for name in inside} == inside  # the module is its own again
    assert together == alone
