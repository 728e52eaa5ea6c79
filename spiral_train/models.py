"""Loading the model a run trains: the tiny embedded one (built once, cached) or a folder, LoRA applied, and the
frozen KL anchor. The trainer, Ray rollout workers and learner ranks all load through here."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from spiral_train import lora
from spiral_train.collector import ModelPolicy
from spiral_train.config import TrainConfig
from spiral_train.generation import HFGenerator
from spiral_train.tiny import TinySpec, tiny_model_path


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' but no CUDA GPU is visible; use --device cpu (or auto)")
    return torch.device(name)


def load_model(config: TrainConfig, device: torch.device, log=print) -> tuple[Any, Any, str]:
    """The model and tokenizer to train, and where they came from (the tiny model is built if needed)."""
    source = str(tiny_model_path(tiny_spec(config), log=log)) if config.model is None else config.model
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = lora.load_weights(source, device)  # for a LoRA checkpoint, its base model
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    model = lora.prepare(model, config, source)  # LoRA adapters, when lora_rank > 0 or `source` holds one
    model.eval()
    return model, tokenizer, source


def reference_model(config: TrainConfig, model: Any, source: str, device: torch.device) -> Any:
    """The KL anchor (None without a KL term): for LoRA the same model with its adapters off, which costs no
    memory; else a frozen copy of the starting weights, loaded from `source` onto `device`: in bf16 where the
    learner computes in bf16 (`bf16` on CUDA: the anchor only runs forward under autocast), else in fp32."""
    if config.kl_coef <= 0:
        return None
    if lora.is_peft(model):
        return lora.BaseReference(model)
    dtype = torch.bfloat16 if config.bf16 and device.type == "cuda" else torch.float32
    ref = AutoModelForCausalLM.from_pretrained(source, dtype=dtype).to(device).eval()
    ref.requires_grad_(False)
    return ref


def tiny_spec(config: TrainConfig) -> TinySpec:
    """The tiny model warms up on every game of the run (training and evaluation), with their options."""
    env_ids = tuple(dict.fromkeys([*config.env_ids, *(config.eval_env_ids or [])]))
    kwargs = tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in config.game_kwargs().items()))
    spec = TinySpec(env_ids=env_ids, env_kwargs=kwargs, template=config.template)
    if config.generator == "vllm":  # vLLM's CPU attention needs head_dim >= 32: 2 heads of 32, same weight shapes
        spec = dataclasses.replace(spec, num_heads=2, num_kv_heads=1)
    return spec


def frozen_checkpoint_policy(
    config: TrainConfig, folder: str, device: torch.device, rng: torch.Generator
) -> ModelPolicy:
    """The seat of a fixed checkpoint opponent (`opponent=DIR`): its model frozen on `device` (a LoRA checkpoint
    merged into its base), sampled with the run's settings through transformers."""
    folder = lora.model_folder(folder)  # a checkpoint folder names its model/ subfolder
    model = lora.load_frozen(folder, device)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    generator = HFGenerator(model, tokenizer, config.generation_batch_size, config.bf16)
    c = config
    return ModelPolicy(
        generator, tokenizer, c.template, c.temperature, c.max_new_tokens, rng, c.truncated_is_invalid, c.top_k, c.top_p
    )


def frozen_copy(
    policy: ModelPolicy, model: torch.nn.Module, batch_size: int, bf16: bool, device: torch.device | None = None
) -> ModelPolicy:
    """A seat like `policy` (same tokenizer, sampling settings and RNG) that plays a frozen copy of `model`,
    on `device` (default: where `model` is), through transformers: the opponent pool's one extra model."""
    frozen = copy.deepcopy(model).eval()
    frozen.requires_grad_(False)
    for param in frozen.parameters():
        param.grad = None  # the learner's gradients, copied along; never needed here
    if device is not None:
        frozen = frozen.to(device)
    return dataclasses.replace(policy, generator=HFGenerator(frozen, policy.tokenizer, batch_size, bf16))
