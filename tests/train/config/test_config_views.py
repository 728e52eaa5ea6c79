"""A run's settings by view: the checks run once, from `make_config`; components get small plain settings."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from spiral_train.config import ConfigError, make_config
from spiral_train.config.views import (
    LearnerRankSettings,
    LearnerSettings,
    ModelSource,
    RaySettings,
    Sampling,
    WorkerSettings,
    opponent_kind,
)
from spiral_train.eval.cli import main as spiral_eval


def test_make_config_checks_values_and_the_machine_and_a_replace_checks_nothing():
    config = make_config("tiny-cpu")
    with pytest.raises(ConfigError, match="unknown env id 'NoSuchGame-v0'"):
        make_config("tiny-cpu", {"env_ids": ["NoSuchGame-v0"]})
    with pytest.raises(ConfigError, match="num_epochs=0 must be a positive integer"):
        make_config("tiny-cpu", {"num_epochs": 0})
    # in a Ray actor or a plan variant, a replace neither builds games nor looks anything up
    variant = dataclasses.replace(config, env_ids=["NoSuchGame-v0"], num_epochs=0)
    assert variant.env_ids == ["NoSuchGame-v0"] and variant.num_epochs == 0


def test_each_view_takes_the_options_of_the_same_meaning():
    config = make_config("tiny-cpu", {"top_k": 5, "temperature": 0.7, "lr": 1e-3, "lora_rank": 4, "lora_alpha": 8.0})
    assert Sampling.from_config(config) == Sampling("qwen3", 0.7, 8, True, 5, 1.0)
    assert LearnerSettings.from_config(config).lr == 1e-3
    source = ModelSource.from_config(config)
    assert (source.lora.rank, source.lora.alpha, source.lora.target_modules) == (4, 8.0, ("all-linear",))
    assert source.tiny_env_ids == ("KuhnPoker-v1",)
    assert source.tiny_env_kwargs == (("KuhnPoker-v1", '{"history": "current"}'),)
    assert source.plain("/m").lora.rank == 0 and source.plain("/m").model == "/m"


def test_ray_actors_get_plain_settings_and_the_frozen_opponent_is_decided_once(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert [opponent_kind(o) for o in ("self", "random", "strong", str(tmp_path))] == [
        None,
        "random",
        "strong",
        "frozen",
    ]
    frozen = make_config("tiny-cpu", {"opponent": str(tmp_path), "ray_workers": 1})
    worker = WorkerSettings.from_config(frozen, "/start")
    assert worker.frozen_opponent == str(tmp_path) and worker.model.model == "/start"
    assert WorkerSettings.from_config(make_config("tiny-cpu", {"opponent": "strong"}), "/start").frozen_opponent is None
    rank = LearnerRankSettings.from_config(frozen, "/start")
    layout = RaySettings.from_config(frozen)
    for settings in (worker, rank, layout):  # what crosses to the actors: plain data, equal after the trip
        assert pickle.loads(pickle.dumps(settings)) == settings
        assert "TrainConfig" not in repr(settings)


def test_a_sampling_out_of_range_is_refused_naming_it():
    with pytest.raises(ConfigError, match="top_p in \\(0, 1\\]"):
        Sampling(top_p=0.0)


def test_spiral_eval_refuses_an_unknown_game_before_loading_any_model(capsys):
    assert spiral_eval(["games", "--model", "no-such-folder", "--env-ids", "KuhnPoker-v2"]) == 2
    assert "unknown env id 'KuhnPoker-v2'" in capsys.readouterr().err
