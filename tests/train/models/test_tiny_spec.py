"""The tiny model's build settings a run asks for (`spiral_train.models.loading.tiny_spec`): per-game warm-up
length, and the default run's model kept as it was built (no builds here)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from spiral_train.config import make_config
from spiral_train.config.views import ModelSource
from spiral_train.models.loading import tiny_spec
from spiral_train.models.tiny import WARMUP_STEPS_BY_GAME, TinySpec, warmup_steps_for

KUHN_ONLY_KEY = "4058422b00cfd8b3"
"""The cache key of the default run's tiny model (Kuhn Poker only), computed on main at 49079c7, before the warm-up
length became per game. When it changes, `spiral-train` with no arguments trains another model and its
documented numbers (docs/learning.md) no longer hold: change it only on purpose, and remeasure them."""


def spec_for(**overrides) -> TinySpec:
    return tiny_spec(ModelSource.from_config(make_config("tiny-cpu", overrides)))


def test_the_default_runs_model_is_the_one_it_was_measured_with():
    spec = spec_for()
    assert spec.env_ids == ("KuhnPoker-v1",)
    assert spec.warmup_steps == TinySpec.warmup_steps == 600
    assert spec.key() == KUHN_ONLY_KEY


def test_a_run_with_tictactoe_warms_up_for_as_long_as_tictactoe_needs():
    longer = WARMUP_STEPS_BY_GAME["TicTacToe-v0"]
    assert longer > TinySpec.warmup_steps
    assert spec_for(env_ids=["TicTacToe-v0"]).warmup_steps == longer
    assert spec_for(env_ids=["KuhnPoker-v1", "TicTacToe-v0"]).warmup_steps == longer
    # an evaluation-only game is warmed up on too, so it counts as well
    assert spec_for(env_ids=["KuhnPoker-v1"], eval_env_ids=["TicTacToe-v0"]).warmup_steps == longer


def test_games_without_their_own_length_keep_the_default():
    assert spec_for(env_ids=["KuhnPoker-v1", "SimpleNegotiation-v1"]).warmup_steps == TinySpec.warmup_steps
    assert warmup_steps_for(()) == TinySpec.warmup_steps
    assert warmup_steps_for(("KuhnPoker-v1",)) == TinySpec.warmup_steps


def test_the_longer_warm_up_names_another_cache_folder():
    tictactoe = spec_for(env_ids=["TicTacToe-v0"])
    assert tictactoe.key() != TinySpec(**{**tictactoe.__dict__, "warmup_steps": TinySpec.warmup_steps}).key()


def test_a_smoke_test_asks_for_a_short_warm_up_and_gets_its_own_cache_folder():
    quick = spec_for(env_ids=["TicTacToe-v0"], tiny_warmup_steps=50)
    assert quick.warmup_steps == 50
    assert quick.key() != spec_for(env_ids=["TicTacToe-v0"]).key()
    assert spec_for(tiny_warmup_steps=None).key() == KUHN_ONLY_KEY
