"""The policy a run ships: the EMA of the weights, what evaluation measures and a checkpoint's model/ holds, while
training and resume continue from the last iterate, exactly."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import small_config
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from spiral_train.checkpoint import LAST_ITERATE, POLICY_FILE, latest_checkpoint, load_state
from spiral_train.config import ConfigError, make_config
from spiral_train.metrics import read_metrics
from spiral_train.policy_average import WeightAverage
from spiral_train.trainer import Trainer


def _model(quick_model):
    return AutoModelForCausalLM.from_pretrained(quick_model)


def test_the_average_folds_each_update_in_and_applied_restores_the_trained_weights_exactly(quick_model):
    model = _model(quick_model)
    start = {k: v.detach().clone() for k, v in model.named_parameters()}
    average = WeightAverage(model, decay=0.75)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(1.0)
    average.update(model)
    trained = {k: v.detach().clone() for k, v in model.named_parameters()}
    with average.applied(model):
        for name, param in model.named_parameters():
            torch.testing.assert_close(param, start[name] + 0.25)  # 0.75 * w0 + 0.25 * (w0 + 1)
    for name, param in model.named_parameters():
        assert torch.equal(param, trained[name]), name  # bit for bit
    with pytest.raises(RuntimeError, match="inside"), average.applied(model):
        raise RuntimeError("inside")
    for name, param in model.named_parameters():
        assert torch.equal(param, trained[name]), name


def test_only_trainable_weights_are_averaged(quick_model):
    model = _model(quick_model)
    frozen = "model.norm.weight"
    model.get_parameter(frozen).requires_grad_(False)
    average = WeightAverage(model, decay=0.5)
    assert frozen not in average.average and len(average.average) == len(list(model.parameters())) - 1


def test_a_saved_average_of_another_model_is_refused(quick_model):
    model = _model(quick_model)
    state = WeightAverage(model, 0.9).state_dict()
    state["average"].pop(next(iter(state["average"])))
    with pytest.raises(ValueError, match="holds"):
        WeightAverage(model, 0.9).load_state_dict(state)


@pytest.mark.learning
def test_a_run_evaluates_and_ships_the_average_anchors_to_it_and_resumes_from_the_last_iterate(quick_model, tmp_path):
    extra = {"eval_games": 8, "eval_every": 2, "eval_opponents": ["random"], "eval_probe_samples": 4}
    extra["kl_anchor"] = "average"  # the KL term pulls towards the average: restored on resume too (below)
    straight = Trainer(small_config(quick_model, steps=3, **extra), tmp_path / "straight")
    straight.run()
    anchor = dict(straight.learner.ref_model.named_parameters())
    for name, tensor in straight.average.average.items():
        assert torch.equal(anchor[name], tensor), name
    checkpoint = latest_checkpoint(tmp_path / "straight")
    assert checkpoint is not None
    described = json.loads((checkpoint / POLICY_FILE).read_text())
    assert set(described) == {"model", LAST_ITERATE} and "average" in described["model"]
    shipped = load_file(checkpoint / "model" / "model.safetensors")
    last = load_file(checkpoint / LAST_ITERATE / "model.safetensors")
    average = load_state(checkpoint)["policy_average"]["average"]
    trained = dict(straight.model.named_parameters())
    for name, tensor in average.items():
        assert torch.equal(shipped[name], tensor), name  # model/ is the average
        assert torch.equal(last[name], trained[name].detach()), name  # last_iterate/ the trained weights
    assert any(not torch.equal(shipped[n], last[n]) for n in average)
    records = read_metrics(tmp_path / "straight")
    for record in (records[0], records[2], records[3]):  # evaluations: the average's and the last iterate's
        assert "eval/KuhnPoker-v1/strategy/nash_conv" in record and "eval/KuhnPoker-v1/random/win_rate" in record
        assert "last_iterate/KuhnPoker-v1/strategy/nash_conv" in record
        assert not any(key.startswith("last_iterate/KuhnPoker-v1/random") for key in record)
    # at step 0 the average is the starting model, so both measure the same weights on the same sampling stream
    first = records[0]
    assert first["eval/KuhnPoker-v1/strategy/nash_conv"] == first["last_iterate/KuhnPoker-v1/strategy/nash_conv"]

    Trainer(small_config(quick_model, steps=2, **extra), tmp_path / "split").run()
    resumed = Trainer(small_config(quick_model, steps=3, **extra), tmp_path / "split", resume=True)
    resumed.run()
    for name, tensor in straight.model.named_parameters():
        assert torch.equal(tensor, dict(resumed.model.named_parameters())[name]), name
    for name, tensor in straight.average.average.items():
        assert torch.equal(tensor, resumed.average.average[name]), name


def test_policy_average_settings_are_checked(quick_model):
    with pytest.raises(ConfigError, match="policy_average='mean' is not allowed"):
        make_config("tiny-cpu", {"policy_average": "mean"})
    with pytest.raises(ConfigError, match=r"policy_average_decay=1\.0 must be in \[0, 1\)"):
        make_config("tiny-cpu", {"policy_average_decay": 1.0})
    with pytest.raises(ConfigError, match="kl_anchor=average anchors to the policy average"):
        make_config("tiny-cpu", {"kl_anchor": "average", "policy_average": "none"})
    with pytest.raises(ConfigError, match="auto or none"):
        make_config("tiny-cpu", {"policy_average": "ema", "ray_workers": 1})
    assert make_config("tiny-cpu", {"ray_workers": 1}).policy_average == "auto"  # auto: the last iterate on Ray
    assert make_config("paper-qwen3-4b", {}).policy_average == "none"
