"""A rehearsal at real shapes, scaled down: a random model in a folder laid out like the hub's Qwen3-Base (the real
vocabulary, special tokens, eos and chat template; width 64, 2 layers) trained by the paper preset for two steps,
and the builder of such folders (`spiral_train.models.random_model`)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

import spiral_envs
from spiral_train.cli import main
from spiral_train.models import hub_tokenizer, random_model

QWEN3_TURN = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
SMALL = {"hidden": 64, "layers": 2, "heads": 2}  # head_dim 32: what vLLM's CPU attention takes


@pytest.fixture(scope="module")
def hub_like(tmp_path_factory):
    return random_model.build(tmp_path_factory.mktemp("qwen3") / "model", "Qwen3-0.6B", **SMALL)


@pytest.fixture(scope="module")
def tokenizer(hub_like):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(hub_like)


def test_config_and_generation_config_are_laid_out_like_the_hubs(hub_like):
    from transformers import AutoConfig

    config = json.loads((hub_like / "config.json").read_text())
    assert config["vocab_size"] == 151_936 and config["tie_word_embeddings"] is True
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]) == (64, 2, 2)
    assert (config["head_dim"], config["num_key_value_heads"], config["intermediate_size"]) == (32, 1, 192)
    assert config["eos_token_id"] == config["bos_token_id"] == 151_643
    assert config["rope_theta"] == 1_000_000 and config["max_position_embeddings"] == 32_768
    loaded = AutoConfig.from_pretrained(hub_like)
    assert loaded.model_type == "qwen3" and loaded.vocab_size == 151_936 and loaded.head_dim == 32
    generation = json.loads((hub_like / "generation_config.json").read_text())
    assert generation["eos_token_id"] == 151_643
    assert not {"do_sample", "temperature", "top_p", "top_k", "max_new_tokens"} & set(generation)


def test_tokenizer_has_the_hubs_special_tokens_at_their_ids(tokenizer):
    assert len(tokenizer) == 151_669 < 151_936  # fewer entries than embedding rows, as on the hub
    for offset, (content, _) in enumerate(hub_tokenizer.ADDED_TOKENS):
        assert tokenizer.convert_tokens_to_ids(content) == 151_643 + offset, content
    assert tokenizer.eos_token == tokenizer.pad_token == "<|endoftext|>" and tokenizer.eos_token_id == 151_643
    assert tokenizer.bos_token is None
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert im_end == 151_645 != tokenizer.eos_token_id  # a turn's end is not the model's eos
    assert tokenizer.decode([151_645, 151_667], skip_special_tokens=True) == "<think>"  # <think> is not special


def test_chat_template_and_game_prompts(tokenizer):
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == QWEN3_TURN
    two = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]
    assert tokenizer.apply_chat_template(two, tokenize=False) == QWEN3_TURN + "ok<|im_end|>\n"
    for env_id in ("TicTacToe-v0", "KuhnPoker-v1", "SimpleNegotiation-v1"):
        env = spiral_envs.make(env_id)
        env.reset(seed=0)
        prompt = spiral_envs.qwen3_prompt(str(env.observe(env.agent_selection)))
        ids = tokenizer(prompt, add_special_tokens=False).input_ids
        assert ids[0] == 151_644 and ids.count(151_645) == 1 and ids[-3] == 151_644  # markers are one token each
        assert 2.5 < len(prompt) / len(ids) < 6.0, (env_id, len(prompt), len(ids))  # a few characters a token
        assert tokenizer.decode(ids) == prompt
    text = "Café → 你好, \\boxed{[bet]}"
    assert tokenizer.decode(tokenizer(text).input_ids) == text  # byte level: any text round-trips


def test_weights_load_at_the_shape_of_the_config(hub_like):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(hub_like)
    assert model.get_input_embeddings().weight.shape == (151_936, 64)
    assert model.generation_config.eos_token_id == 151_643
    assert sum(p.numel() for p in model.parameters()) == random_model.parameter_count(
        random_model.model_config(**SMALL)
    )


@pytest.mark.parametrize("shape", list(random_model.SHAPES))
def test_real_shapes_without_weights(tmp_path, shape):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = random_model.build(tmp_path / shape, shape, weights=False, tokenizer=False)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "generation_config.json"]
    config = json.loads((folder / "config.json").read_text())
    real = random_model.SHAPES[shape]
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]) == (
        real.hidden,
        real.layers,
        real.heads,
    )
    assert (config["num_key_value_heads"], config["head_dim"], config["intermediate_size"]) == (
        8,
        128,
        real.intermediate,
    )
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))
    assert sum(p.numel() for p in model.parameters()) == random_model.parameter_count(config)


def test_no_weights_keeps_the_tokenizer(tmp_path):
    folder = random_model.build(tmp_path / "plan", "Qwen3-4B", weights=False)
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"} <= names
    assert not [n for n in names if n.endswith((".safetensors", ".bin"))]


def test_builds_are_deterministic():
    import torch

    assert hub_tokenizer.build_tokenizer(0).to_str() == hub_tokenizer.build_tokenizer(0).to_str()
    config = random_model.model_config(**SMALL)
    a, b = (random_model.random_model(config, seed=3).state_dict() for _ in range(2))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_overrides_are_refused_by_name():
    with pytest.raises(ValueError, match="head_dim"):
        random_model.model_config("Qwen3-0.6B", hidden=64, heads=3)
    with pytest.raises(ValueError, match="Qwen3-4B"):
        random_model.model_config("Qwen3-8B")


@pytest.mark.learning
def test_paper_preset_runs_two_steps_on_a_hub_like_folder(hub_like, tmp_path):
    run_dir = tmp_path / "run"
    # --eval-top-p 1.0: top-p sorts all 151,936 logits of every row at every token, about half of this run's
    # time on a 2-core CPU; --ray-learner-strategy ddp keeps one local learner whatever the preset's Ray layout
    argv = [
        "--preset", "paper-qwen3-4b", "--model", str(hub_like), "--device", "cpu", "--generator", "hf",
        "--ray-workers", "0", "--ray-learners", "1", "--ray-learner-strategy", "ddp",
        "--steps", "2", "--games-per-step", "4", "--num-envs", "4", "--max-new-tokens", "16",
        "--eval-every", "2", "--eval-games", "2", "--eval-probe-samples", "1", "--eval-top-p", "1.0",
        "--micro-batch-size", "4", "--no-progress", "--run-dir", str(run_dir),
    ]  # fmt: skip
    assert main(argv) == 0
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1, 2]
    for r in records[1:]:
        assert r["train/games"] == 4 and 0 < r["train/response_len"] <= 16
        assert 100 < r["train/prompt_len"] < 1000  # Kuhn Poker's prompt in the hub-like tokens
        # the learner's logprobs of the sampled tokens are the sampler's (fp32 on CPU): no shift by the eos
        # that is not the turn's end, no row of the 151,936 lost
        assert abs(r["approx_kl"]) < 1e-2, r["approx_kl"]
    assert any(k.startswith("eval/TicTacToe-v0/") for k in records[-1])
    saved = run_dir / "checkpoints" / "step_000002" / "model"
    from transformers import AutoTokenizer

    reloaded = AutoTokenizer.from_pretrained(saved)
    assert reloaded.eos_token == "<|endoftext|>" and len(reloaded) == 151_669
    assert reloaded.convert_tokens_to_ids("<|im_end|>") == 151_645
    assert json.loads((saved / "config.json").read_text())["vocab_size"] == 151_936
