"""The PPO ratio divides by the learner's own logprobs, and truncated importance sampling corrects the sampler.

A sampler whose numerics differ from the learner's (vLLM in bf16 against fp32 master weights, merged LoRA weights
rounded, async samples of older weights) is played here by a deliberately perturbed copy of the learner's
model that also samples hotter (temperature 1.6 against the learner's 1.0): its logprobs are far from the
learner's in both directions, as on a GPU but larger, and the update must still start at a ratio of exactly 1,
weight each token by min(pi_old / pi_sampler, cap), and log the gap.
"""

from __future__ import annotations

import copy
import itertools
import random

import pytest

torch = pytest.importorskip("torch")

from helpers import perturb  # noqa: E402

from spiral_train.learner import (  # noqa: E402
    Learner,
    LearnerSettings,
    length_buckets,
    make_batch,
    response_logprobs,
    tis_weights,
)
from spiral_train.models.loading import load_model  # noqa: E402
from spiral_train.rollout.collector import Collector, ModelPolicy  # noqa: E402
from spiral_train.rollout.generation import HFGenerator, positions  # noqa: E402
from spiral_train.rollout.records import LEARNER, Match  # noqa: E402

SELF_PLAY = {"player_0": LEARNER, "player_1": LEARNER}


def settings(**extra) -> LearnerSettings:
    values = dict(
        lr=1e-3, adam_betas=(0.9, 0.95), weight_decay=0.0, lr_schedule="constant", warmup_steps=0, steps=10,
        num_epochs=1, micro_batch_size=4, clip_eps=0.2, kl_coef=0.0, loss_aggregation="token_mean",
        max_grad_norm=1e9, max_new_tokens=8, temperature=1.0, top_k=0, top_p=1.0, bf16=False, seed=0, tis_cap=2.0,
    )  # fmt: skip
    return LearnerSettings(**{**values, **extra})


@pytest.fixture(scope="module")
def perturbed_turns(quick_model):
    """The learner's model, and turns sampled by a perturbed copy of it (with their advantages set)."""
    from spiral_train.config import make_config
    from spiral_train.config.views import ModelSource

    model, tokenizer, _ = load_model(
        ModelSource.from_config(make_config("tiny-cpu", {"model": str(quick_model)})), torch.device("cpu")
    )
    sampler = copy.deepcopy(model)
    perturb(sampler, seed=5)
    policy = ModelPolicy(HFGenerator(sampler, tokenizer), tokenizer, "qwen3", 1.6, 8, torch.Generator().manual_seed(0))
    matches = [Match("KuhnPoker-v1", s, SELF_PLAY) for s in range(6)]
    turns = [t for r in Collector(num_envs=6).play(matches, {LEARNER: policy}) for t in r.turns]
    rng = random.Random(0)
    for turn in turns:
        turn.advantage = rng.choice([-1.0, -0.5, 0.5, 1.0])
    return model, tokenizer, turns


def importance_ratios(model, tokenizer, turns) -> torch.Tensor:
    """pi_learner / pi_sampler of every response token, from a plain full-vocabulary computation."""
    batch = make_batch(turns, tokenizer.pad_token_id, torch.device("cpu"))
    mask = batch.attention_mask
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, attention_mask=mask, position_ids=positions(mask)).logits
    targets = batch.input_ids[:, -batch.response_width :]
    logp = torch.log_softmax(logits[:, -batch.response_width - 1 : -1].float(), -1).gather(-1, targets[..., None])
    return torch.exp(logp.squeeze(-1) - batch.sampler_logprobs)[batch.response_mask.bool()]


def test_the_first_ratio_is_one_and_the_gap_to_the_sampler_is_logged(perturbed_turns):
    model, tokenizer, turns = perturbed_turns
    ratios = importance_ratios(model, tokenizer, turns)
    cap = (1.0 + float(ratios.max())) / 2  # binds on some tokens and not on others, whatever was sampled
    learner = Learner(copy.deepcopy(model), settings(tis_cap=cap), torch.device("cpu"), tokenizer.pad_token_id)
    record = learner.update(turns)
    assert record["clip_frac"] == 0.0 and record["approx_kl"] == 0.0  # pi / pi_old is exactly 1 on the first pass
    # the perturbed sampler really is far from the learner, and the gap is what a plain computation gives
    assert record["mismatch/dlogp_mean"] > 0.01  # fp32 samplers agree to 1e-6 (test_collector)
    assert record["mismatch/dlogp_mean"] == pytest.approx(float(ratios.log().abs().mean()), rel=1e-3)
    assert record["mismatch/dlogp_max"] == pytest.approx(float(ratios.log().abs().max()), rel=1e-3)
    assert record["mismatch/tis_truncated"] == pytest.approx(float((ratios > cap).float().mean()), abs=1e-9)
    assert 0.0 < record["mismatch/tis_truncated"] < 1.0


def test_later_passes_divide_by_the_first_pass_logprobs(perturbed_turns):
    """Two passes: the second one's ratio moved off 1 (so it clips some tokens) by the first step alone, not by
    the sampler's gap: with lr 0 no weight moves and nothing clips, however far the sampler is."""
    model, tokenizer, turns = perturbed_turns
    moved = Learner(copy.deepcopy(model), settings(num_epochs=2, lr=3e-2), torch.device("cpu"), tokenizer.pad_token_id)
    assert moved.update(turns)["clip_frac"] > 0.0
    still = Learner(copy.deepcopy(model), settings(num_epochs=2, lr=1e-12), torch.device("cpu"), tokenizer.pad_token_id)
    record = still.update(turns)
    assert record["clip_frac"] == 0.0 and abs(record["approx_kl"]) < 1e-6


@pytest.mark.parametrize("cap_kind", ["off", "binding", "loose"])
def test_the_gradient_is_the_truncated_importance_weighted_policy_gradient(perturbed_turns, cap_kind):
    """`Learner.backward` on one micro-batch gives the gradient of -sum(A * min(pi_old / pi_sampler, cap) *
    log pi) / tokens, computed here from a full log-softmax ("off": cap 0, weights 1; "binding": a cap between
    1 and the largest ratio; "loose": a cap no ratio reaches)."""
    model, tokenizer, turns = perturbed_turns
    chunk = turns[:4]
    largest = float(importance_ratios(model, tokenizer, chunk).max())
    assert largest > 1.0
    cap = {"off": 0.0, "binding": (1.0 + largest) / 2, "loose": 2 * largest}[cap_kind]
    learner = Learner(copy.deepcopy(model), settings(tis_cap=cap), torch.device("cpu"), tokenizer.pad_token_id)
    learner.model.train()
    learner.backward(chunk, [0, 1, 2, 3], {}, 10.0, dict.fromkeys(("loss", "clip_frac", "approx_kl", "entropy"), 0.0),
                     {"dlogp_sum": 0.0, "dlogp_max": 0.0, "truncated": 0.0})  # fmt: skip
    got = {n: p.grad.clone() for n, p in learner.model.named_parameters()}

    reference = copy.deepcopy(model).train()
    batch = make_batch(chunk, tokenizer.pad_token_id, torch.device("cpu"))
    mask = batch.attention_mask
    out = reference(input_ids=batch.input_ids, attention_mask=mask, position_ids=positions(mask))
    targets = batch.input_ids[:, -batch.response_width :]
    logits = out.logits[:, -batch.response_width - 1 : -1].float()
    logp = torch.log_softmax(logits, -1).gather(-1, targets[..., None]).squeeze(-1)
    weight = torch.exp(logp.detach() - batch.sampler_logprobs)
    weight = weight.clamp(max=cap) if cap else torch.ones_like(weight)
    loss = -(batch.advantages[:, None] * weight * logp * batch.response_mask).sum() / 10.0
    loss.backward()
    for name, param in reference.named_parameters():
        torch.testing.assert_close(got[name], param.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_tis_weights_are_capped_ratios():
    old = torch.tensor([[0.0, -1.0, -3.0]])
    sampler = torch.tensor([[-2.0, -1.0, -1.0]])
    weights, truncated = tis_weights(old, sampler, 2.0)
    torch.testing.assert_close(weights, torch.tensor([[2.0, 1.0, float(torch.exp(torch.tensor(-2.0)))]]))
    assert truncated.tolist() == [[1.0, 0.0, 0.0]]
    weights, truncated = tis_weights(old, sampler, 0.0)
    assert weights.tolist() == [[1.0, 1.0, 1.0]] and not truncated.any()


def test_length_buckets_cover_every_turn_once_with_similar_lengths():
    rng = random.Random(0)
    lengths = [rng.randrange(10, 500) for _ in range(103)]
    chunks = length_buckets(lengths, 8, rng)
    assert sorted(i for c in chunks for i in c) == list(range(103))
    assert all(1 <= len(c) <= 8 for c in chunks) and sum(len(c) == 8 for c in chunks) == 12
    spans = sorted((min(lengths[i] for i in c), max(lengths[i] for i in c)) for c in chunks)
    assert all(hi <= next_lo for (_, hi), (next_lo, _) in itertools.pairwise(spans))  # buckets do not interleave
    assert [sorted(c) for c in chunks] != [sorted(c) for c in sorted(chunks)]  # handed out in a shuffled order


def test_padding_tokens_do_not_change_the_response_logprobs(perturbed_turns):
    """A turn's logprobs are the same alone as in a micro-batch padded to a longer turn (the learner skips
    padding positions in `token_logprobs`)."""
    model, tokenizer, turns = perturbed_turns
    long, short = max(turns, key=lambda t: len(t.response_ids)), min(turns, key=lambda t: len(t.response_ids))
    with torch.no_grad():
        both, _ = response_logprobs(model, make_batch([long, short], tokenizer.pad_token_id, torch.device("cpu")), 1.0)
        alone, _ = response_logprobs(model, make_batch([short], tokenizer.pad_token_id, torch.device("cpu")), 1.0)
    n = len(short.response_ids)
    torch.testing.assert_close(both[1, :n], alone[0, :n], rtol=0, atol=1e-5)
    assert not both[1, n:].any()
