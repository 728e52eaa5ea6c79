"""LoRA (`--lora-rank`): only adapters train, checkpoints hold only adapters, resume is exact, merged weights match."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("peft")

from helpers import small_config
from transformers import AutoModelForCausalLM

from spiral_train.checkpoint import latest_checkpoint
from spiral_train.cli import build_parser, config_from_args
from spiral_train.config import ConfigError, make_config
from spiral_train.config.views import ModelSource
from spiral_train.learner import make_batch, response_logprobs
from spiral_train.metrics import read_metrics
from spiral_train.models import lora
from spiral_train.models.loading import load_model
from spiral_train.rollout.generation import HFGenerator
from spiral_train.trainer import Trainer


def lora_config(model: Path, steps: int, **extra):
    return small_config(model, steps, **{"lora_rank": 4, "lr": 1e-2, "warmup_steps": 0, **extra})


def is_adapter_key(name: str) -> bool:
    return any(part.startswith("lora_") for part in name.split("."))


def snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def linear_shapes(model) -> list[tuple[int, int]]:
    """(in, out) of every linear projection in the transformer blocks: what "all-linear" adapts."""
    return [(m.in_features, m.out_features) for m in model.model.layers.modules() if isinstance(m, torch.nn.Linear)]


def test_only_adapters_train_and_the_optimizer_holds_exactly_rank_r_parameters(quick_model, tmp_path):
    base = AutoModelForCausalLM.from_pretrained(quick_model, dtype=torch.float32)
    rank = 4
    expected = rank * sum(i + o for i, o in linear_shapes(base))
    assert len(linear_shapes(base)) == 7 * base.config.num_hidden_layers  # q k v o gate up down

    trainer = Trainer(lora_config(quick_model, steps=2, lora_rank=rank), tmp_path)
    trainable = {n: p for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable and all(is_adapter_key(n) for n in trainable)
    assert sum(p.numel() for p in trainable.values()) == expected
    in_optimizer = [p for group in trainer.learner.optimizer.param_groups for p in group["params"]]
    assert sum(p.numel() for p in in_optimizer) == expected
    before = snapshot(trainer.model)

    trainer.run()

    after = snapshot(trainer.model)
    base_weights = base.state_dict()
    for name, tensor in after.items():
        if is_adapter_key(name):
            assert not torch.equal(tensor, before[name]), f"adapter {name} did not change"
        else:
            assert torch.equal(tensor, before[name]), f"base weight {name} changed"
            plain = name.removeprefix("base_model.model.").replace(".base_layer.", ".")
            assert torch.equal(tensor, base_weights[plain]), plain


def test_lora_resume_gives_the_same_next_step_and_weights(quick_model, tmp_path):
    straight = Trainer(lora_config(quick_model, steps=2), tmp_path / "straight")
    straight.run()
    expected = read_metrics(tmp_path / "straight")

    Trainer(lora_config(quick_model, steps=1), tmp_path / "split").run()
    resumed = Trainer(lora_config(quick_model, steps=2), tmp_path / "split", resume=True)
    assert resumed.step == 1
    assert lora.is_peft(resumed.model)
    resumed.run()
    got = read_metrics(tmp_path / "split")

    assert [r["step"] for r in got] == [0, 1, 2]
    for key in ("train/reward_mean", "loss", "grad_norm", "train/response_len"):
        assert got[2][key] == expected[2][key], key
    baselines = [{k: v for k, v in r.items() if k.startswith("rae/baseline/")} for r in (got[2], expected[2])]
    assert baselines[0] == baselines[1] and baselines[0]
    want, have = snapshot(straight.model), snapshot(resumed.model)
    assert want.keys() == have.keys()
    for name, tensor in want.items():
        assert torch.equal(tensor, have[name]), name


def test_checkpoint_holds_the_adapter_and_a_pointer_to_its_base(quick_model, tmp_path):
    trainer = Trainer(lora_config(quick_model, steps=1), tmp_path / "run")
    trainer.run()
    checkpoint = latest_checkpoint(tmp_path / "run")
    files = {p.name for p in (checkpoint / "model").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= files
    assert not files & {"model.safetensors", "pytorch_model.bin", "config.json"}, files
    adapter_bytes = (checkpoint / "model" / "adapter_model.safetensors").stat().st_size
    assert adapter_bytes < (Path(quick_model) / "model.safetensors").stat().st_size / 4
    state = torch.load(checkpoint / "state.pt", weights_only=False)
    assert state["model_base"] == str(Path(quick_model).resolve())
    saved = json.loads((checkpoint / "model" / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == str(Path(quick_model).resolve()) and saved["r"] == 4

    # a fixed opponent read from that checkpoint is the base with the shipped adapter (the average) merged in
    opponent_run = Trainer(lora_config(quick_model, steps=1, lora_rank=0, opponent=str(checkpoint)), tmp_path / "vs")
    assert opponent_run.opponent == "frozen"
    frozen = opponent_run.players["frozen"].generator.model
    assert not lora.is_peft(frozen)
    assert trainer.average is not None and len(trainer.average.average) < len(list(trainer.model.parameters()))
    with trainer.average.applied(trainer.model):
        merged = lora.merged_state_dict(trainer.model)
    for name, tensor in frozen.state_dict().items():
        torch.testing.assert_close(tensor, merged[name], rtol=0, atol=1e-6, msg=name)

    # a LoRA checkpoint whose base is gone fails naming the base and the fix
    saved["base_model_name_or_path"] = str(tmp_path / "gone")
    (checkpoint / "model" / "adapter_config.json").write_text(json.dumps(saved))
    with pytest.raises(FileNotFoundError, match="base_model_name_or_path"):
        Trainer(lora_config(quick_model, steps=1, lora_rank=0, opponent=str(checkpoint)), tmp_path / "vs2")


def adapted_model(quick_model, seed: int = 0):
    """The quick model with rank-4 adapters set to random values (fresh ones are zero, which proves nothing)."""
    config = lora_config(quick_model, steps=1)
    model, tokenizer, _ = load_model(ModelSource.from_config(config), torch.device("cpu"), log=lambda *_: None)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.1)
    return model, tokenizer


def test_merged_state_dict_loads_into_a_plain_model_with_the_same_logits(quick_model):
    model, tokenizer = adapted_model(quick_model)
    model.train()
    live_before = snapshot(model)

    merged = lora.merged_state_dict(model)

    plain = AutoModelForCausalLM.from_pretrained(quick_model, dtype=torch.float32).eval()
    assert merged.keys() == plain.state_dict().keys()
    plain.load_state_dict(merged, strict=True)
    # the live model is untouched: same tensors, still unmerged, still in training mode
    assert model.training
    assert all(torch.equal(v, live_before[k]) for k, v in snapshot(model).items())

    model.eval()
    ids = torch.tensor(
        [tokenizer("<|im_start|>user\nYou are Player 0 in Kuhn Poker", add_special_tokens=False).input_ids]
    )
    with torch.no_grad():
        adapted_logits = model(input_ids=ids).logits
        plain_logits = plain(input_ids=ids).logits
        base_logits = AutoModelForCausalLM.from_pretrained(quick_model, dtype=torch.float32)(input_ids=ids).logits
    torch.testing.assert_close(plain_logits, adapted_logits, rtol=0, atol=1e-5)
    assert (adapted_logits - base_logits).abs().max() > 1e-2  # the adapters do change the model

    # sampling from the peft model (with its key-value cache) equals sampling from the merged plain model
    prompts = [ids[0].tolist(), ids[0, :-3].tolist()]
    outs = [
        HFGenerator(m, tokenizer).generate(
            prompts, temperature=1.0, max_new_tokens=6, generator=torch.Generator().manual_seed(1)
        )
        for m in (model, plain)
    ]
    for a, b in zip(*outs):
        assert a.token_ids == b.token_ids
        torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs), rtol=0, atol=1e-5)


def test_kl_reference_is_the_base_with_adapters_off(quick_model, tmp_path):
    trainer = Trainer(lora_config(quick_model, steps=1, kl_coef=0.1), tmp_path)
    assert isinstance(trainer.learner.ref_model, lora.BaseReference)
    with torch.no_grad():
        for name, param in trainer.model.named_parameters():
            if "lora_B" in name:
                param.fill_(0.05)
    results = trainer.collector.play(trainer.matches()[:2], trainer.players)
    turns = [turn for result in results for turn in result.turns]
    batch = make_batch(turns, trainer.tokenizer.pad_token_id, trainer.device)
    base = AutoModelForCausalLM.from_pretrained(quick_model, dtype=torch.float32).eval()
    with torch.no_grad():
        ref_logp, _ = response_logprobs(trainer.learner.ref_model, batch, 1.0)
        base_logp, _ = response_logprobs(base, batch, 1.0)
        adapted_logp, _ = response_logprobs(trainer.model, batch, 1.0)
    torch.testing.assert_close(ref_logp, base_logp, rtol=0, atol=1e-6)
    assert not torch.allclose(adapted_logp, base_logp, atol=1e-3)
    record = trainer.train_step()
    assert record["kl_ref"] > 0


def test_lora_options_are_checked_and_reachable_from_the_cli(monkeypatch):
    with pytest.raises(ConfigError, match="lora_rank"):
        make_config("tiny-cpu", {"lora_rank": -1})
    with pytest.raises(ConfigError, match="lora_dropout"):
        make_config("tiny-cpu", {"lora_rank": 8, "lora_dropout": 1.0})
    args = build_parser().parse_args(["--lora-rank", "8", "--lora-target-modules", "q_proj", "v_proj"])
    config, _, _ = config_from_args(args)
    assert config.lora_rank == 8 and config.lora_target_modules == ["q_proj", "v_proj"]
    monkeypatch.setitem(__import__("sys").modules, "peft", None)  # as if peft were not installed
    with pytest.raises(ConfigError, match=r"spiral-envs\[lora\]"):
        make_config("tiny-cpu", {"lora_rank": 8})
    make_config("tiny-cpu", {"lora_rank": 0})  # full fine-tuning never needs peft


def test_named_target_modules_adapt_only_those_projections(quick_model):
    config = lora_config(quick_model, steps=1, lora_rank=2, lora_target_modules=["q_proj", "v_proj"])
    model, _, _ = load_model(ModelSource.from_config(config), torch.device("cpu"), log=lambda *_: None)
    adapted = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n, p in model.named_parameters() if p.requires_grad}
    assert adapted == {"q_proj", "v_proj"}
    attn = model.get_base_model().model.layers[0].self_attn
    per_layer = sum(m.in_features + m.out_features for m in (attn.q_proj.base_layer, attn.v_proj.base_layer))
    expected = 2 * per_layer * model.get_base_model().config.num_hidden_layers
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected
