"""The vLLM backend, for real on CPU: weight sync, behaviour logprobs, determinism, and a training run that learns.

Every test here runs a real vLLM engine in this process on the tiny model built with 2 heads of 32 (vLLM's CPU
attention has no kernel for the default model's head_dim 16). They skip only where vLLM is not installed; CI
installs it.
"""

from __future__ import annotations

import pytest
import torch
from helpers import perturb, run_e2e

import spiral_envs
from spiral_train.config import ConfigError, make_config
from spiral_train.config.views import ModelSource
from spiral_train.learner import make_batch, response_logprobs
from spiral_train.models.loading import tiny_spec
from spiral_train.models.tiny import tiny_model_path
from spiral_train.rollout.collector import Turn


@pytest.fixture(scope="module")
def vllm_model_dir(quick_vllm_model):
    """A tiny model vLLM's CPU attention runs (conftest's `quick_vllm_model`): these tests compare the engine
    with the learner on the same weights, so a short warm-up serves."""
    pytest.importorskip("vllm")
    return quick_vllm_model


@pytest.fixture(scope="module")
def warmed_vllm_model_dir(spiral_cache):
    """The tiny model `--generator vllm` trains by default (600 warm-up steps: it answers in the game's form)."""
    pytest.importorskip("vllm")
    return tiny_model_path(
        tiny_spec(ModelSource.from_config(make_config("tiny-cpu", {"generator": "vllm"}))), log=lambda *_: None
    )


def load(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path)


def kuhn_prompts(tokenizer, n: int) -> list[list[int]]:
    """Opening prompts of n Kuhn Poker games (both roles): the prompts the trainer really sends."""
    prompts = []
    env = spiral_envs.make("KuhnPoker-v1")
    for seed in range(n):
        env.reset(seed=seed)
        text = spiral_envs.render_prompt("qwen3", str(env.observe(env.agent_selection)))
        prompts.append(tokenizer(text, add_special_tokens=False).input_ids)
    return prompts


def learner_logprobs(model, prompts, generations, temperature: float, top_k=0, top_p=1.0) -> list[list[float]]:
    """What the learner computes for the same answers: `response_logprobs` on a training batch."""
    turns = [
        Turn("KuhnPoker-v1", "player_0", i, p, g.token_ids, g.logprobs, True, False)
        for i, (p, g) in enumerate(zip(prompts, generations))
    ]
    batch = make_batch(turns, pad_id=0, device=torch.device("cpu"))
    with torch.no_grad():
        logp, _ = response_logprobs(model, batch, temperature, top_k, top_p)
    return [logp[row, : len(g.token_ids)].tolist() for row, g in enumerate(generations)]


def max_gap(a: list[list[float]], b: list[list[float]]) -> float:
    return max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))


def draw(generator, prompts, temperature: float, seed: int, max_new_tokens: int = 12, top_k=0, top_p=1.0):
    rng = torch.Generator().manual_seed(seed)
    return generator.generate(
        prompts, temperature=temperature, max_new_tokens=max_new_tokens, generator=rng, top_k=top_k, top_p=top_p
    )


@pytest.mark.vllm
def test_lora_model_syncs_its_merged_weights(vllm_model_dir):
    """With --lora-rank the learner is a peft model: the engine gets the adapters merged into the base."""
    from spiral_train.models import lora
    from spiral_train.rollout.generation.vllm import VLLMGenerator

    base, tokenizer = load(vllm_model_dir)
    model = lora.wrap(base, 4, 32.0, 0.0, ["all-linear"], str(vllm_model_dir))
    prompts = kuhn_prompts(tokenizer, 16)
    engine = VLLMGenerator(model, tokenizer, max_model_len=1024, kv_cache_mb=64)
    try:
        before = draw(engine, prompts, 1.0, seed=3)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():  # peft starts lora_B at zero (a no-op adapter): give it a real update
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.add_(0.5 * torch.randn(param.shape, generator=g))
        assert max_gap([x.logprobs for x in before], learner_logprobs(model, prompts, before, 1.0)) > 1e-2
        engine.sync_weights()
        gens = draw(engine, prompts, 1.0, seed=5, max_new_tokens=16)
        assert max_gap([x.logprobs for x in gens], learner_logprobs(model, prompts, gens, 1.0)) < 1e-4
    finally:
        engine.close()


@pytest.mark.vllm
@pytest.mark.parametrize("from_disk", [False, True], ids=["in-memory", "from-disk"])
def test_sync_then_vllm_logprobs_equal_the_learners(vllm_model_dir, from_disk):
    from spiral_train.rollout.generation.vllm import VLLMGenerator

    model, tokenizer = load(vllm_model_dir)
    prompts = kuhn_prompts(tokenizer, 16)
    engine = VLLMGenerator(model, tokenizer, max_model_len=1024, kv_cache_mb=64, sync_from_disk=from_disk)
    try:
        before = draw(engine, prompts, 1.0, seed=3)
        assert max_gap([g.logprobs for g in before], learner_logprobs(model, prompts, before, 1.0)) < 1e-4

        perturb(model, seed=1)
        stale = learner_logprobs(model, prompts, before, 1.0)
        assert max_gap([g.logprobs for g in before], stale) > 1e-2  # the change is visible to the learner
        engine.sync_weights()
        after = draw(engine, prompts, 1.0, seed=3)
        # same per-request seeds, new weights: the samples or their logprobs change
        assert [(g.token_ids, g.logprobs) for g in after] != [(g.token_ids, g.logprobs) for g in before]

        for temperature in (1.0, 0.6):
            gens = draw(engine, prompts, temperature, seed=5, max_new_tokens=16)
            assert all(len(g.logprobs) == len(g.token_ids) > 0 for g in gens)
            recomputed = learner_logprobs(model, prompts, gens, temperature)
            assert max_gap([g.logprobs for g in gens], recomputed) < 1e-4, temperature
        for top_k, top_p in ((3, 1.0), (0, 0.7), (5, 0.8)):  # vLLM truncates as the learner recomputes
            gens = draw(engine, prompts, 1.0, seed=5, max_new_tokens=16, top_k=top_k, top_p=top_p)
            recomputed = learner_logprobs(model, prompts, gens, 1.0, top_k, top_p)
            assert max_gap([g.logprobs for g in gens], recomputed) < 1e-4, (top_k, top_p)
            full = learner_logprobs(model, prompts, gens, 1.0)
            assert max_gap(recomputed, full) > 1e-3, "the truncation changed nothing; the test proves little"
    finally:
        engine.close()


@pytest.mark.vllm
def test_a_weight_sync_logs_nothing_unless_something_is_wrong(vllm_model_dir):
    """vLLM logs a rotary-embedding warning and INFO lines at each reload (about 40 lines a step on Qwen3);
    none says anything is wrong, so a sync passes none to vLLM's log handlers, while a real warning still shows."""
    import logging

    from spiral_train.models.lora import merged_weights
    from spiral_train.rollout.generation.vllm import VLLMGenerator, quiet_reload

    class Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.lines: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(f"{record.levelname} {record.getMessage()}")

    model, tokenizer = load(vllm_model_dir)
    generator = VLLMGenerator(model, tokenizer, max_num_seqs=4)
    vllm_logger, collect = logging.getLogger("vllm"), Collect()
    vllm_logger.addHandler(collect)
    try:
        generator.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": merged_weights(model)})
        assert any("RotaryEmbedding: Failed to load weights" in line for line in collect.lines), collect.lines
        collect.lines.clear()
        generator.sync_weights()
        assert collect.lines == []
        with quiet_reload():
            logging.getLogger("vllm.model_executor").warning("a real problem")
        assert collect.lines == ["WARNING a real problem"]
    finally:
        vllm_logger.removeHandler(collect)
        generator.close()


@pytest.mark.learning  # the default vLLM build: its warm-up takes minutes the first time
@pytest.mark.vllm
def test_samples_are_reproducible_for_a_seed_and_end_like_the_hf_backend(warmed_vllm_model_dir):
    from spiral_train.rollout.generation.vllm import VLLMGenerator

    model, tokenizer = load(warmed_vllm_model_dir)
    prompts = kuhn_prompts(tokenizer, 24)
    engine = VLLMGenerator(model, tokenizer, max_model_len=1024, kv_cache_mb=64)
    try:
        first = draw(engine, prompts, 1.0, seed=7)
        again = draw(engine, prompts, 1.0, seed=7)
        other = draw(engine, prompts, 1.0, seed=8)
        assert [g.token_ids for g in first] == [g.token_ids for g in again]
        assert [g.token_ids for g in first] != [g.token_ids for g in other]
        # a request's sample does not depend on its batch: its seed is drawn per request
        assert [g.token_ids for g in draw(engine, prompts[:1], 1.0, seed=7)] == [first[0].token_ids]

        eos = tokenizer.eos_token_id
        stopped = [g for g in first if g.finish_reason == "stop"]
        assert stopped, "the warmed-up tiny model ends most answers with its end-of-turn token"
        for g in stopped:
            assert g.token_ids[-1] == eos and g.text == tokenizer.decode(g.token_ids[:-1])
            assert "\\boxed{" in g.text
        cut = draw(engine, prompts, 1.0, seed=7, max_new_tokens=2)
        assert all(g.finish_reason == "length" and len(g.token_ids) == 2 for g in cut if eos not in g.token_ids)
        greedy = draw(engine, prompts, 0.0, seed=1)
        assert [g.token_ids for g in greedy] == [g.token_ids for g in draw(engine, prompts, 0.0, seed=2)]

        with pytest.raises(ValueError, match="vllm_max_model_len"):
            engine.generate(prompts, temperature=1.0, max_new_tokens=2000, generator=torch.Generator())
    finally:
        engine.close()


@pytest.mark.vllm
def test_an_unsupported_head_dim_fails_at_start_naming_the_fix(quick_model):
    pytest.importorskip("vllm")
    from spiral_train.rollout.generation.vllm import VLLMGenerator

    model, tokenizer = load(quick_model)  # the default tiny shape: head_dim 16
    with pytest.raises(ValueError, match=r"head_dim is 16.*generator='hf'.*num_heads=2, num_kv_heads=1"):
        VLLMGenerator(model, tokenizer)


def test_generator_options_are_validated():
    with pytest.raises(ConfigError, match="generator='sglang'"):
        make_config("tiny-cpu", {"generator": "sglang"})
    with pytest.raises(ConfigError, match="vllm_gpu_memory_utilization"):
        make_config("tiny-cpu", {"vllm_gpu_memory_utilization": 1.5})
    with pytest.raises(ConfigError, match="vllm_kv_cache_mb"):
        make_config("tiny-cpu", {"vllm_kv_cache_mb": 0})
    assert make_config("tiny-cpu", {"generator": "vllm", "vllm_max_model_len": 512}).vllm_max_model_len == 512
    default, for_vllm = (
        tiny_spec(ModelSource.from_config(make_config("tiny-cpu"))),
        tiny_spec(ModelSource.from_config(make_config("tiny-cpu", {"generator": "vllm"}))),
    )
    assert (default.num_heads, default.num_kv_heads, default.hidden_size) == (4, 2, 64)  # unchanged: head_dim 16
    assert (for_vllm.num_heads, for_vllm.num_kv_heads, for_vllm.hidden_size) == (2, 1, 64)  # head_dim 32


@pytest.mark.learning
@pytest.mark.vllm
def test_tiny_run_with_vllm_runs_end_to_end(spiral_cache, tmp_path, capsys):
    """The hf backend's end-to-end test (test_train_e2e.py), same seed and steps, with `--generator vllm`."""
    records = run_e2e(tmp_path / "run", "--generator", "vllm")
    # on-policy: the first pass of each update sees ratio 1, so vLLM's logprobs are the learner's
    assert all(abs(r["approx_kl"]) < 1e-4 for r in records[1:]), [r["approx_kl"] for r in records[1:]]
    assert "curves:" in capsys.readouterr().out
