"""The registry (ids, plugins) and the prompt templates.

Plugins are discovered through real `importlib.metadata` entry points: a tiny distribution is written to a
temporary folder and put on `sys.path`, exactly as `pip install` would leave it, so the test exercises the
same lookup an installed third-party game goes through.
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import spiral_envs
from spiral_envs import TextGameEnv, chat_messages, chat_prompt, make, qwen3_prompt, register, registered_ids, spec
from spiral_envs import registry as registry_module
from spiral_envs.games.tictactoe import TicTacToe
from spiral_envs.prompts import TEMPLATES

# Written out in full rather than built from the module's constants, so a drift from the paper shows up.
PAPER_QWEN3_TEMPLATE = (
    "<|im_start|>user\nYou are playing a two-player zero-sum game. Make valid actions to win.\n"
    "Observation: {obs}\nPlease reason step by step, and put your final answer within \\boxed{{}}.<|im_end|>\n"
    "<|im_start|>assistant\n"
)

PLUGIN_MODULE = '''
"""A one-pile Nim: take 1 or 2 stones; whoever takes the last stone wins."""

import random

from spiral_envs.core import TERMINAL, GameState, InvalidMove, TextGame, zero_sum_returns
from spiral_envs.env import TextGameEnv


class NimState(GameState[int]):
    def __init__(self, stones):
        self.stones = stones
        self.player = 0
        self.winner = None

    def current_player(self):
        return self.player

    def legal_actions(self):
        return [] if self.player == TERMINAL else [n for n in (1, 2) if n <= self.stones]

    def apply_action(self, action):
        if action not in self.legal_actions():
            raise InvalidMove(f"cannot take {action}")
        self.stones -= action
        if self.stones == 0:
            self.winner, self.player = self.player, TERMINAL
        else:
            self.player = 1 - self.player

    def returns(self):
        return zero_sum_returns(self.winner)

    def player_view(self, player):
        return {"player": player, "stones": self.stones}


class Nim(TextGame[int]):
    def __init__(self, stones):
        self.stones = stones

    def new_state(self, rng: random.Random):
        return NimState(self.stones)

    def rules(self, player):
        return f"You are Player {player}. Take [1] or [2] stones; taking the last stone wins."

    def describe(self, state, player, full_history):
        return f"Stones left: {state.stones}."

    def format_action(self, action):
        return f"[{action}]"


class TmpGameEnv(TextGameEnv):
    metadata = {**TextGameEnv.metadata, "name": "tmp_game_v0"}

    def __init__(self, stones: int = 4, **options):
        super().__init__(Nim(stones), **options)
'''


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A copy of the registry that the test may change; the real one is back untouched afterwards."""
    registered_ids()  # load the installed plugins first, so the copy is complete
    copy = dict(registry_module._REGISTRY)
    monkeypatch.setattr(registry_module, "_REGISTRY", copy)
    monkeypatch.setattr(registry_module, "_plugins_loaded", True)
    yield copy


def write_plugin_distribution(root: Path) -> None:
    """What `pip install tmp-game` would put in site-packages: the module and its `.dist-info`."""
    (root / "tmp_game_plugin.py").write_text(PLUGIN_MODULE)
    dist_info = root / "tmp_game-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: tmp-game\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [spiral_envs.envs]
            TmpGame-v0 = tmp_game_plugin:TmpGameEnv
            """
        )
    )


def play_to_the_end(env: Any, seed: int = 0) -> dict[str, float]:
    env.reset(seed=seed)
    agent = spiral_envs.RandomAgent(seed)
    while not all(env.terminations.values()):
        mover = env.agent_selection
        env.step(agent(str(env.observe(mover)), env.infos[mover]))
    return dict(env.rewards)


# -- registration in code -------------------------------------------------------------------------------------


def test_register_callable_entry_point(isolated_registry: dict[str, Any]) -> None:
    built: list[dict[str, Any]] = []

    def small_board(**options: Any) -> TextGameEnv:
        built.append(options)
        return TextGameEnv(TicTacToe(), **options)

    register("SmallBoard-v3", small_board, history="full")
    assert "SmallBoard-v3" in registered_ids()
    env = make("SmallBoard-v3", error_allowance=1)
    assert isinstance(env, TextGameEnv)
    assert built == [{"history": "full", "error_allowance": 1}]
    assert env.history == "full"
    assert sum(play_to_the_end(env).values()) == 0


def test_register_module_attr_string(isolated_registry: dict[str, Any]) -> None:
    register("TicTacToeFull-v0", "spiral_envs.games.tictactoe:TicTacToe", history="full")
    env = make("TicTacToeFull-v0")
    assert type(env) is TextGameEnv and type(env.game) is TicTacToe  # a game class gets the text env
    assert env.metadata["name"] == "tic_tac_toe_full_v0"
    assert env.history == "full"
    assert make("TicTacToeFull-v0", history="current").history == "current"  # call options beat defaults
    assert spec("TicTacToeFull-v0").load() is TicTacToe


def test_a_game_class_gets_the_env_options_and_its_game_the_rest() -> None:
    env = make("KuhnPoker-v1", num_rounds=2, scoring="chips", history="current", error_allowance=1)
    assert (env.game.num_rounds, env.game.scoring) == (2, "chips")
    assert (env.history, env.error_allowance) == ("current", 1)
    assert env.invalid_move_penalty == -4.0  # the game's own: the most chips two rounds can lose
    assert make("KuhnPoker-v1", invalid_move_penalty=-1.5).invalid_move_penalty == -1.5  # an option beats it
    assert make("KuhnPoker-v1").invalid_move_penalty == -1.0  # match scoring: losing the match
    with pytest.raises(TypeError, match=r"KuhnPoker-v1 has no option 'rounds'.*num_rounds, scoring, history"):
        make("KuhnPoker-v1", rounds=2)
    with pytest.raises(ValueError, match="num_rounds must be >= 1"):  # the game checks its own options
        make("KuhnPoker-v1", num_rounds=0)


def test_string_entry_point_is_imported_lazily(isolated_registry: dict[str, Any]) -> None:
    # A broken plugin must not break `import spiral_envs` or other ids: it fails only when asked for.
    register("Broken-v0", "no_such_module_for_spiral_tests:Env")
    assert "Broken-v0" in registered_ids()
    with pytest.raises(ModuleNotFoundError, match="no_such_module_for_spiral_tests"):
        make("Broken-v0")
    assert isinstance(make("TicTacToe-v0").game, TicTacToe)


def test_entry_point_string_without_attr_is_rejected(isolated_registry: dict[str, Any]) -> None:
    register("NoAttr-v0", "spiral_envs.games.tictactoe")
    with pytest.raises(ValueError, match=r"NoAttr-v0.*'package\.module:Name'"):
        make("NoAttr-v0")


def test_duplicate_id_raises(isolated_registry: dict[str, Any]) -> None:
    shipped = r"TicTacToe-v0 is already registered \(shipped with spiral_envs\).*replace=True"
    with pytest.raises(ValueError, match=shipped):
        register("TicTacToe-v0", TicTacToe)
    register("Twice-v0", TicTacToe)
    with pytest.raises(ValueError, match="Twice-v0 is already registered"):
        register("Twice-v0", TicTacToe)
    assert spec("TicTacToe-v0").entry_point == "spiral_envs.games.tictactoe:TicTacToe"


@pytest.mark.parametrize("bad_id", ["TicTacToe", "TicTacToe-v", "TicTacToe-vX", "TicTacToe-v1.5", "Game_v1", 7, None])
def test_malformed_id_raises(isolated_registry: dict[str, Any], bad_id: Any) -> None:
    with pytest.raises(ValueError, match=r"must look like 'Name-vN'"):
        register(bad_id, TicTacToe)
    assert bad_id not in isolated_registry


def test_default_kwargs_are_not_shared_between_makes(isolated_registry: dict[str, Any]) -> None:
    defaults = {"history": "full"}
    register("Defaults-v0", TicTacToe, **defaults)
    defaults["history"] = "nonsense"
    assert make("Defaults-v0").history == "full"


def test_spec_unknown_id_is_a_key_error_naming_it() -> None:
    with pytest.raises(KeyError, match=r"unknown env id 'Chess-v0'.*TicTacToe-v0"):
        spec("Chess-v0")


# -- plugins through real entry points ------------------------------------------------------------------------


def test_plugin_discovered_through_entry_points(
    isolated_registry: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_plugin_distribution(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry_module, "_plugins_loaded", False)
    monkeypatch.delitem(sys.modules, "tmp_game_plugin", raising=False)

    env = make("TmpGame-v0")
    assert type(env).__name__ == "TmpGameEnv"
    assert "TmpGame-v0" in registered_ids()
    assert spec("TmpGame-v0").entry_point == "tmp_game_plugin:TmpGameEnv"
    # The plugin is a full citizen: options, misspelt options, play, and the built-in games all still work.
    assert make("TmpGame-v0", history="current").history == "current"
    with pytest.raises(TypeError, match=r"did you mean 'stones'"):
        make("TmpGame-v0", stone=3)
    rewards = play_to_the_end(make("TmpGame-v0", stones=5))
    assert sorted(rewards.values()) == [-1.0, 1.0]
    assert set(spiral_envs.registered_ids()) >= {"TicTacToe-v0", "TmpGame-v0"}


def test_an_id_a_plugin_holds_is_refused_unless_replaced(
    isolated_registry: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registering a plugin's id in code names the plugin, before its entry points are read and without
    importing its module; `replace=True` replaces it, and reading the entry points later keeps the replacement."""
    write_plugin_distribution(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry_module, "_plugins_loaded", False)
    monkeypatch.delitem(sys.modules, "tmp_game_plugin", raising=False)
    holder = "by the installed package tmp-game 0.1, entry point 'TmpGame-v0 = tmp_game_plugin:TmpGameEnv'"
    with pytest.raises(ValueError, match=re.escape(holder)):
        register("TmpGame-v0", TicTacToe)
    assert "tmp_game_plugin" not in sys.modules
    register("TmpGame-v0", TicTacToe, replace=True)
    assert "TmpGame-v0" in registered_ids()
    assert type(make("TmpGame-v0").game) is TicTacToe


def test_plugin_gone_after_cleanup() -> None:
    # Runs after the plugin tests in file order: the fixture must have put the real registry back.
    assert "TmpGame-v0" not in registry_module._REGISTRY


# -- prompts --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("observation", ["", "Your card: K.\nYour legal moves: [check], [bet]", "{braces} \\boxed{}"])
def test_qwen3_prompt_is_the_papers_template(observation: str) -> None:
    assert qwen3_prompt(observation) == PAPER_QWEN3_TEMPLATE.format(obs=observation)


def test_qwen3_prompt_of_a_real_observation() -> None:
    env = make("TicTacToe-v0")
    env.reset(seed=0)
    observation = str(env.observe(env.agent_selection))
    prompt = qwen3_prompt(observation)
    assert prompt.startswith("<|im_start|>user\n")
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert f"Observation: {observation}\n" in prompt


def chatml_template(messages: list[dict[str, str]], tokenize: bool, add_generation_prompt: bool) -> str:
    """A ChatML renderer with the signature of `tokenizer.apply_chat_template`, as Qwen's chat models use."""
    if tokenize:
        raise AssertionError("chat_prompt must ask for text, not token ids")
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def test_chat_prompt_with_a_chatml_template_equals_the_paper_prompt() -> None:
    observation = "Current board:\n 0 | 1 | 2"
    assert chat_prompt(observation, chatml_template) == qwen3_prompt(observation)


def test_chat_prompt_passes_a_single_user_message() -> None:
    seen: list[tuple[list[dict[str, str]], bool, bool]] = []

    def recording_template(messages: list[dict[str, str]], tokenize: bool, add_generation_prompt: bool) -> str:
        seen.append((messages, tokenize, add_generation_prompt))
        return "|".join(m["content"] for m in messages)

    result = chat_prompt("obs text", recording_template)
    assert len(seen) == 1
    messages, tokenize, add_generation_prompt = seen[0]
    assert tokenize is False
    assert add_generation_prompt is True
    assert messages == chat_messages("obs text")
    assert [m["role"] for m in messages] == ["user"]
    assert "Observation: obs text" in messages[0]["content"]
    assert result == messages[0]["content"]


def test_template_names() -> None:
    assert TEMPLATES["qwen3"]("x") == qwen3_prompt("x")
    assert TEMPLATES["none"]("raw observation") == "raw observation"


def test_render_prompt_takes_every_template_name_and_names_the_choices_for_a_bad_one() -> None:
    def apply(messages, tokenize, add_generation_prompt):
        return "chat:" + messages[0]["content"]

    assert spiral_envs.TEMPLATE_NAMES == ("qwen3", "none", "chat")
    rendered = {name: spiral_envs.render_prompt(name, "obs", apply) for name in spiral_envs.TEMPLATE_NAMES}
    assert rendered["qwen3"] == qwen3_prompt("obs") and rendered["none"] == "obs"
    assert rendered["chat"] == chat_prompt("obs", apply)
    with pytest.raises(ValueError, match="needs a tokenizer with a chat template"):
        spiral_envs.render_prompt("chat", "obs")
    with pytest.raises(ValueError, match=r"unknown template 'qwen2'; choose one of \['qwen3', 'none', 'chat'\]"):
        spiral_envs.render_prompt("qwen2", "obs")


def test_a_game_registers_its_theory_as_it_registers_its_expert():
    """Built-in games name their theory class by path; it loads on first use and measures that env's options."""
    from spiral_envs.games.kuhn_strategy import KuhnPokerTheory
    from spiral_envs.games.tictactoe_strategy import TicTacToeTheory

    assert spiral_envs.spec("KuhnPoker-v1").load_theory() is KuhnPokerTheory
    assert spiral_envs.spec("TicTacToe-v0").load_theory() is TicTacToeTheory
    assert spiral_envs.spec("SimpleNegotiation-v1").load_theory() is None  # no theory: no strategy metrics
    theory = KuhnPokerTheory("KuhnPoker-v1", {"num_rounds": 2})
    assert theory.env.game.num_rounds == 2 and theory.has_exploiter
    later = [p for p in theory.probes() if p.key.round == 2]  # the whole match: round 2's chips too, fewer answers
    assert later and theory.probe_answers(64, 120) == 12 * 64 + sum(theory.samples_at(p, 64) for p in later)
    assert TicTacToeTheory("TicTacToe-v0").probe_answers(64, 120) == 120 * 8
