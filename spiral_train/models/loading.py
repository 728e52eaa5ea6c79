"""Loading the model a run trains: the tiny embedded one (built once, cached) or a folder, LoRA applied, and the
frozen KL anchor. The trainer, Ray rollout workers, learner ranks and `spiral-eval` all load through here, from
settings (`config.views`), not a training config; a model *seat* is built in `spiral_train.rollout.policy`."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from spiral_train.config.views import LearnerSettings, ModelSource
from spiral_train.models import lora
from spiral_train.models.tiny import TinySpec, tiny_model_path, warmup_steps_for


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' but no CUDA GPU is visible; use --device cpu (or auto)")
    return torch.device(name)


def load_model(source: ModelSource, device: torch.device, log=print) -> tuple[Any, Any, str]:
    """The model and tokenizer to train, and where they came from (the tiny model is built if needed)."""
    folder = str(tiny_model_path(tiny_spec(source), log=log)) if source.model is None else source.model
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = lora.load_weights(folder, device)  # for a LoRA checkpoint, its base model
    if source.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    model = lora.prepare(model, source.lora, folder)  # LoRA adapters, when rank > 0 or `folder` holds one
    model.eval()
    return model, tokenizer, folder


def reference_model(settings: LearnerSettings, model: Any, source: str, device: torch.device) -> Any:
    """The KL anchor (None without a KL term): for LoRA the same model with its adapters off, which costs no
    memory; else a frozen copy of the starting weights, loaded from `source` onto `device`: in bf16 where the
    learner computes in bf16 (`bf16` on CUDA: the anchor only runs forward under autocast), else in fp32."""
    if settings.kl_coef <= 0:
        return None
    if lora.is_peft(model):
        return lora.BaseReference(model)
    dtype = torch.bfloat16 if settings.bf16 and device.type == "cuda" else torch.float32
    ref = AutoModelForCausalLM.from_pretrained(source, dtype=dtype).to(device).eval()
    ref.requires_grad_(False)
    return ref


def tiny_spec(source: ModelSource) -> TinySpec:
    """The tiny model warms up on every game of the run (training and evaluation), with their options, for as many
    steps as its games need (`spiral_train.models.tiny.warmup_steps_for`) unless `tiny_warmup_steps` says."""
    spec = TinySpec(
        env_ids=source.tiny_env_ids,
        env_kwargs=source.tiny_env_kwargs,
        template=source.tiny_template,
        warmup_steps=source.tiny_warmup_steps or warmup_steps_for(source.tiny_env_ids),
    )
    if source.for_vllm:  # vLLM's CPU attention needs head_dim >= 32: 2 heads of 32, same weight shapes
        spec = dataclasses.replace(spec, num_heads=2, num_kv_heads=1)
    return spec
