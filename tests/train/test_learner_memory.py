"""What the learner keeps between updates: no gradients, and with `offload_optimizer` no Adam moments on the device."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

from test_ratio import settings  # noqa: E402

from spiral_train.config import make_config  # noqa: E402
from spiral_train.config.views import ModelSource  # noqa: E402
from spiral_train.learner import Learner  # noqa: E402
from spiral_train.models.loading import load_model  # noqa: E402
from spiral_train.rollout.collector import Collector, ModelPolicy  # noqa: E402
from spiral_train.rollout.generation import HFGenerator  # noqa: E402
from spiral_train.rollout.records import LEARNER, Match  # noqa: E402


@pytest.fixture(scope="module")
def turns_and_model(quick_model):
    model, tokenizer, _ = load_model(
        ModelSource.from_config(make_config("tiny-cpu", {"model": str(quick_model)})), torch.device("cpu")
    )
    policy = ModelPolicy(HFGenerator(model, tokenizer), tokenizer, "qwen3", 1.0, 8, torch.Generator().manual_seed(0))
    matches = [Match("KuhnPoker-v1", s, {"player_0": LEARNER, "player_1": LEARNER}) for s in range(4)]
    turns = [t for r in Collector(num_envs=4).play(matches, {LEARNER: policy}) for t in r.turns]
    for i, turn in enumerate(turns):
        turn.advantage = 1.0 if i % 2 else -1.0
    return model, tokenizer, turns


def test_no_gradient_outlives_an_update(turns_and_model):
    model, tokenizer, turns = turns_and_model
    learner = Learner(copy.deepcopy(model), settings(num_epochs=2), torch.device("cpu"), tokenizer.pad_token_id)
    assert learner.update(turns)["grad_norm"] > 0
    assert all(p.grad is None for p in learner.model.parameters())


def test_offloading_the_optimizer_changes_no_number(turns_and_model):
    """Two updates with the moments offloaded between them give the weights and moments of two without."""
    model, tokenizer, turns = turns_and_model
    learners = [
        Learner(copy.deepcopy(model), settings(offload_optimizer=offload), torch.device("cpu"), tokenizer.pad_token_id)
        for offload in (False, True)
    ]
    for learner in learners:
        learner.update(turns)
        learner.update(turns)
    plain, offloaded = learners
    for a, b in zip(plain.model.parameters(), offloaded.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for sa, sb in zip(plain.optimizer.state.values(), offloaded.optimizer.state.values()):
        torch.testing.assert_close(sa["exp_avg_sq"], sb["exp_avg_sq"], rtol=0, atol=0)
        assert sb["exp_avg"].device.type == "cpu"
