"""The entry-point plugin path, end to end, with the example package in `examples/coin_guess`.

Installing the example for real (pip) is too slow and would change the test environment. Instead the fixture
does what an installation leaves behind: the module on `sys.path` and a `.dist-info` folder whose
`entry_points.txt` is generated from the example's own `pyproject.toml`. `spiral_envs` then discovers the game
through `importlib.metadata`, exactly as it would an installed package, so a broken declaration, a wrong
"module:attr" path or a registry that forgets to read entry points all fail here.
"""

from __future__ import annotations

import importlib
import re
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pettingzoo.test import api_test, seed_test

import spiral_envs
from spiral_envs import registry
from spiral_envs.theory import Answer, GameTheory

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "coin_guess"
ENV_ID = "CoinGuess-v0"


def declared_entry_points() -> dict[str, str]:
    """The `spiral_envs.envs` entry points that the example's `pyproject.toml` declares."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    return project["entry-points"][registry.ENTRY_POINT_GROUP]


def install_fake_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entries: dict[str, str]) -> None:
    """What `pip install` of `spiral-coin-guess` leaves behind, declaring `entries` (id -> "module:attr") in the
    `spiral_envs.envs` group, and a registry that has not yet read entry points (a patched copy, undone after)."""
    dist_info = tmp_path / "spiral_coin_guess-0.1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: spiral-coin-guess\nVersion: 0.1.0\n")
    lines = [f"[{registry.ENTRY_POINT_GROUP}]"] + [f"{k} = {v}" for k, v in entries.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.syspath_prepend(str(tmp_path))  # also invalidates importlib's caches
    shipped = registry._SHIPPED
    clean = {env_id: s for env_id, s in registry._REGISTRY.items() if env_id not in entries or env_id in shipped}
    monkeypatch.setattr(registry, "_REGISTRY", clean)
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.delitem(sys.modules, "coin_guess", raising=False)


@pytest.fixture
def coin_guess(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`spiral-coin-guess` as if pip-installed, and a registry that has not yet read entry points.

    Everything is undone afterwards: `sys.path`, the registry (a copy is patched in) and the imported module.
    """
    install_fake_distribution(tmp_path, monkeypatch, declared_entry_points())
    yield
    sys.modules.pop("coin_guess", None)


def test_declaration_names_the_game_class() -> None:
    assert declared_entry_points() == {ENV_ID: "coin_guess:CoinGuess"}


def test_make_discovers_the_game_through_its_entry_point(coin_guess: None) -> None:
    assert ENV_ID not in registry._REGISTRY
    found = [ep for ep in importlib.metadata.entry_points(group=registry.ENTRY_POINT_GROUP) if ep.name == ENV_ID]
    assert [ep.value for ep in found] == ["coin_guess:CoinGuess"]

    env = spiral_envs.make(ENV_ID)

    assert type(env) is spiral_envs.TextGameEnv and type(env.game).__name__ == "CoinGuess"
    assert env.metadata["name"] == "coin_guess_v0"
    assert Path(sys.modules["coin_guess"].__file__).parent == EXAMPLE
    assert registry.spec(ENV_ID).entry_point == "coin_guess:CoinGuess"  # registered from the entry point
    assert ENV_ID in spiral_envs.registered_ids()


OTHER_GAME = "spiral_envs.games.tictactoe:TicTacToe"
HOLDER = "spiral-coin-guess 0.1.0, entry point 'CoinGuess-v0 = coin_guess:CoinGuess' in group spiral_envs.envs"


def test_registering_an_id_an_installed_package_holds_is_refused(coin_guess: None) -> None:
    """Before any lookup (the entry points unread) as after one: the error names the package and its entry
    point, the plugin's module is never imported to find out, and the plugin's game is the one `make` builds."""
    refused = re.escape(f"CoinGuess-v0 is already registered (by the installed package {HOLDER})")
    with pytest.raises(ValueError, match=refused):
        spiral_envs.register(ENV_ID, OTHER_GAME)
    assert "coin_guess" not in sys.modules and not registry._plugins_loaded
    assert type(spiral_envs.make(ENV_ID).game).__name__ == "CoinGuess"
    with pytest.raises(ValueError, match=re.escape(HOLDER) + ".*pass replace=True"):
        spiral_envs.register(ENV_ID, OTHER_GAME, num_rounds=3)
    assert type(spiral_envs.make(ENV_ID).game).__name__ == "CoinGuess"


@pytest.mark.parametrize("read_first", [False, True], ids=["entry-points-unread", "entry-points-read"])
def test_replace_true_replaces_an_installed_packages_game(coin_guess: None, read_first: bool) -> None:
    if read_first:
        assert ENV_ID in spiral_envs.registered_ids()
    spiral_envs.register(ENV_ID, OTHER_GAME, replace=True)
    assert type(spiral_envs.make(ENV_ID).game).__name__ == "TicTacToe"
    assert ENV_ID in spiral_envs.registered_ids()  # reading the entry points keeps the replacement
    assert type(spiral_envs.make(ENV_ID).game).__name__ == "TicTacToe"
    with pytest.raises(ValueError, match=re.escape(f"{ENV_ID} is already registered (by '{OTHER_GAME}')")):
        spiral_envs.register(ENV_ID, OTHER_GAME)  # the replacement itself is held now


def test_replace_true_replaces_a_game_registered_in_code(coin_guess: None) -> None:
    spiral_envs.register("ReplaceMe-v0", OTHER_GAME)
    with pytest.raises(ValueError, match="ReplaceMe-v0 is already registered"):
        spiral_envs.register("ReplaceMe-v0", "coin_guess:CoinGuess")
    spiral_envs.register("ReplaceMe-v0", "coin_guess:CoinGuess", replace=True)
    assert type(spiral_envs.make("ReplaceMe-v0").game).__name__ == "CoinGuess"


def test_a_package_that_declares_a_shipped_id_is_ignored_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`import spiral_envs` cannot be broken by an installed package: the shipped game keeps its id."""
    install_fake_distribution(tmp_path, monkeypatch, {"KuhnPoker-v1": "coin_guess:CoinGuess"})
    with pytest.warns(UserWarning, match=r"KuhnPoker-v1 is a game shipped with spiral_envs; ignoring the installed "):
        spiral_envs.registered_ids()
    assert type(spiral_envs.make("KuhnPoker-v1").game).__name__ == "KuhnPoker"
    with pytest.raises(ValueError, match="KuhnPoker-v1 is already registered \\(shipped with spiral_envs\\)"):
        spiral_envs.register("KuhnPoker-v1", "coin_guess:CoinGuess")


def test_unknown_option_is_rejected_by_name(coin_guess: None) -> None:
    with pytest.raises(TypeError, match="num_rounds"):
        spiral_envs.make(ENV_ID, num_round=3)
    assert spiral_envs.make(ENV_ID, num_rounds=3).game.num_rounds == 3


def test_pettingzoo_api_and_seed_tests(coin_guess: None) -> None:
    api_test(spiral_envs.make(ENV_ID), num_cycles=100)
    seed_test(lambda: spiral_envs.make(ENV_ID), num_cycles=100)


def test_a_game_is_scored_by_its_rules(coin_guess: None) -> None:
    """Exact beats close, closer beats farther; each round's hands are fresh; the first guesser alternates."""
    env = spiral_envs.make(ENV_ID, num_rounds=2)
    env.reset(seed=3)
    total = sum(env.state.coins)
    assert env.agent_selection == "player_0"
    env.step(f"I think \\boxed{{[{total}]}}")  # exact
    assert env.agent_selection == "player_1"
    assert f"[{total}]" not in env.infos["player_1"]["legal_actions"]  # the first guess is taken
    far = 0 if total >= 3 else 6
    env.step(f"\\boxed{{[{far}]}}")
    assert env.state.points == [1, 0]
    assert env.agent_selection == "player_1"  # round 2: player 1 guesses first
    total = sum(env.state.coins)
    near, nearer = (total + 2, total + 1) if total <= 4 else (total - 2, total - 1)
    env.step(f"\\boxed{{[{near}]}}")
    env.step(f"\\boxed{{[{nearer}]}}")
    assert env.terminations == {"player_0": True, "player_1": True}
    assert env.rewards == {"player_0": 1.0, "player_1": -1.0}
    assert env.infos["player_0"]["points"] == (2, 0)
    assert env.infos["player_0"]["winner"] == "player_0"


def test_repeating_the_first_guess_is_an_invalid_move(coin_guess: None) -> None:
    env = spiral_envs.make(ENV_ID)
    env.reset(seed=0)
    env.step("\\boxed{[3]}")
    env.step("\\boxed{[3]}")
    assert env.rewards == {"player_0": 1.0, "player_1": -1.0}
    assert "[3]' is not a legal move" in env.infos["player_1"]["reason"]


def test_the_opponents_hand_stays_hidden(coin_guess: None) -> None:
    """Two deals that differ only in player 1's hand look the same to player 0."""
    env = spiral_envs.make(ENV_ID)
    seen: dict[int, dict[int, str]] = {}
    for seed in range(200):
        env.reset(seed=seed)
        mine, theirs = env.state.coins
        seen.setdefault(mine, {})[theirs] = str(env.observe("player_0"))
    for by_opponent_hand in seen.values():
        assert len(by_opponent_hand) == 4  # every opponent hand occurred
        assert len(set(by_opponent_hand.values())) == 1


def test_a_seed_fixes_the_deals(coin_guess: None) -> None:
    def deals(seed: int) -> list[tuple[int, int]]:
        env = spiral_envs.make(ENV_ID, num_rounds=3)
        env.reset(seed=seed)
        hands = []
        while not env.state.is_terminal():
            hands.append(env.state.coins)
            env.step(env.infos[env.agent_selection]["legal_actions"][0])
        return hands

    assert deals(7) == deals(7)
    assert len({tuple(deals(seed)) for seed in range(20)}) > 10


def test_strong_agent_beats_random(coin_guess: None) -> None:
    """Measured: +0.505 mean reward, 231 wins / 29 losses in 400 games; the bound leaves a wide margin."""
    env = spiral_envs.make(ENV_ID)
    results = []
    for seed in range(200):
        side = f"player_{seed % 2}"
        other = f"player_{1 - seed % 2}"
        strong = spiral_envs.make_agent("strong", ENV_ID, seed=seed)
        agents = {side: strong, other: spiral_envs.RandomAgent(seed + 1000)}
        results.append(spiral_envs.play_game(env, agents, seed).rewards[side])
    assert statistics.mean(results) > 0.3
    assert sum(r > 0 for r in results) > 4 * sum(r < 0 for r in results)


def test_strong_agent_takes_the_larger_side_of_the_first_guess(coin_guess: None) -> None:
    """Holding 3 coins the total is at least 3, so after a first guess of 2 the reply 3 wins every deal."""
    agent = spiral_envs.make_agent("strong", ENV_ID, seed=5)
    view = {"player": 1, "coins": 3, "guesses": {0: 2}}
    assert {agent("", {"view": view}) for _ in range(10)} == {"\\boxed{[3]}"}


@pytest.mark.learning
def test_the_trainer_trains_and_evaluates_on_the_plugin_game(coin_guess: None, quick_model, tmp_path) -> None:
    """`spiral-train --env-ids CoinGuess-v0` needs nothing of the game but its registration: two steps of
    self-play and an evaluation against its entry point's `strong_agent`."""
    from helpers import small_config

    from spiral_train.metrics import read_metrics
    from spiral_train.trainer import Trainer

    config = small_config(quick_model, 2, env_ids=[ENV_ID], env_kwargs={}, eval_games=4, eval_every=2)
    Trainer(config, tmp_path / "run", log=lambda *_: None).run()
    records = read_metrics(tmp_path / "run")
    assert [r["step"] for r in records] == [0, 1, 2]
    assert all(r["train/games"] == 6 and r["train/turns_per_game"] > 0 for r in records[1:])
    assert records[-1][f"eval/{ENV_ID}/strong/games"] == 4


def test_the_plugin_theory_probes_the_second_guess_in_the_real_env(coin_guess: None) -> None:
    """The class names its theory as it names its expert; the probes are the reply to a first guess, read by
    the game's own parser, and the expert's answers are all best guesses."""
    theory_class = spiral_envs.spec(ENV_ID).load_theory()
    assert theory_class.__name__ == "CoinGuessTheory" and issubclass(theory_class, GameTheory)
    theory = theory_class(ENV_ID, {})
    probes = theory.probes()
    assert len(probes) == theory.probe_count(0) == 12 and theory.probe_answers(5, 0) == 60
    expert = spiral_envs.make_agent("strong", ENV_ID, seed=0)
    answers = []
    for probe in probes:
        coins, first = probe.key
        assert f"You hold {coins} coin(s)." in probe.observation
        assert f"Your opponent guessed a total of {first}." in probe.observation
        assert f"[{first}]" not in probe.legal and probe.optimal <= set(probe.legal)
        view = {"player": 1, "coins": coins, "guesses": {0: first}}
        answers.append([Answer(expert("", {"view": view})), Answer(f"\\boxed{{[{first}]}}"), Answer("[0]", True)])
    metrics = theory.measure(probes, answers).metrics
    assert metrics["strategy/best_guess_rate"] == pytest.approx(1 / 3)  # the expert's; the repeat and the cut-off miss
    assert metrics["strategy/invalid_rate"] == pytest.approx(2 / 3)  # repeating the first guess is invalid, as in play


def test_evaluate_reports_the_plugin_theory_metrics(coin_guess: None, quick_model) -> None:
    """`evaluate` finds the plugin's theory through the registry: its metric is logged with no change to
    spiral_train, and its cost is counted."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from spiral_train.eval.games import eval_cost, evaluate
    from spiral_train.rollout.collector import Collector, ModelPolicy
    from spiral_train.rollout.generation import HFGenerator

    tokenizer = AutoTokenizer.from_pretrained(quick_model)
    generator = HFGenerator(AutoModelForCausalLM.from_pretrained(quick_model), tokenizer)
    policy = ModelPolicy(generator, tokenizer, "qwen3", 1.0, 8, torch.Generator().manual_seed(0))
    metrics = evaluate(policy, [ENV_ID], ["random", "exploiter"], 2, 1.0, Collector(4, {}), probe_samples=2)
    prefix = f"eval/{ENV_ID}/strategy/"
    rate = metrics[prefix + "best_guess_rate"]
    assert (
        0.0 <= metrics[prefix + "best_guess_rate_lo"] <= rate + 1e-12 <= metrics[prefix + "best_guess_rate_hi"] + 1e-12
    )
    assert metrics[prefix + "best_guess_rate"] <= 1.0 - metrics[prefix + "invalid_rate"] + 1e-12
    assert metrics[f"eval/{ENV_ID}/random/games"] == 2
    assert not any(k.startswith(f"eval/{ENV_ID}/exploiter/") for k in metrics)  # its theory builds none
    cost = eval_cost([ENV_ID], {}, ["random", "exploiter"], 2, 2, 120, 8)
    assert (cost.probe_answers, cost.games) == (24, 2)
