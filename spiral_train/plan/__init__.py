"""A run's memory and placement plan: from a `TrainConfig` and devices, bytes per row and device, and a verdict.

    plan = plan_run(config, "8x80GB")      # or None: this machine's devices (config.devices when set)
    plan.fits, plan.table(), plan.update_peak_bytes(0), plan.devices[0].columns

The model is read from its `config.json` only (built on the meta device); with no `model`, the tiny model's
config (its cache, or its build settings: nothing is built). `spiral-train plan` prints the table; a run that
does not fit is refused at start (`memory_check`). What each row counts: `memory` and `placement`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from spiral_train.plan.devices import DeviceError, Devices, local_devices, parse_devices
from spiral_train.plan.placement import Column, DevicePlan, RunFacts, place
from spiral_train.plan.report import Fix, MemoryPlan
from spiral_train.plan.shapes import ShapeError, model_shape, read_config
from spiral_train.plan.workload import Workload, workload

__all__ = [
    "Column",
    "DeviceError",
    "DevicePlan",
    "Devices",
    "Fix",
    "MemoryPlan",
    "PlanError",
    "ShapeError",
    "local_devices",
    "parse_devices",
    "plan_run",
]

PlanError = (DeviceError, ShapeError)
"""What `plan_run` raises when it cannot plan (devices it cannot read, a model config it cannot read)."""

LORA_FIX_RANK = 16
LAYOUT_LEARNERS = (2, 4)
"""FSDP learner ranks tried by the fixes on a multi-GPU machine (the rest of the GPUs roll out)."""


def plan_run(config: Any, devices: str | None = None, fixes: bool = True) -> MemoryPlan:
    """The plan of `config` (a `TrainConfig`) on `devices` (a string such as "8x80GB"; None: `config.devices`,
    else this machine's). When it does not fit and `fixes`, `MemoryPlan.fixes` lists options that do, each
    checked by planning again."""
    available = _devices(config, devices)
    work = workload(config)
    plan = _plan(config, available, work)
    if fixes and not plan.fits:
        plan.fixes = suggest_fixes(config, available, work)
    return plan


def _devices(config: Any, devices: str | None) -> Devices:
    text = devices if devices is not None else config.devices
    return parse_devices(text) if text else local_devices(config.device)


def _plan(config: Any, available: Devices, work: Workload) -> MemoryPlan:
    tiny = None
    if config.model is None:
        from spiral_train.config.views import ModelSource
        from spiral_train.models.loading import tiny_spec

        tiny = tiny_spec(ModelSource.from_config(config))
    hf_config, source = read_config(config.model, tiny)
    shape = model_shape(hf_config, config.lora_rank, tuple(config.lora_target_modules))
    text = hf_config.get_text_config() if hasattr(hf_config, "get_text_config") else hf_config
    positions = getattr(text, "max_position_embeddings", 0) or 0
    run = RunFacts.from_config(config, positions, _chunk_elements(available.kind))
    work = dataclasses.replace(work, micro_batch=config.micro_batch_size, answer_tokens=config.max_new_tokens)
    plans, problems = place(shape, work, run, available)
    return MemoryPlan(source, shape, work, available, plans, problems)


def _chunk_elements(kind: str) -> int:
    """The logits `token_logprobs` handles at once on a device of `kind`."""
    from spiral_train.token_logprobs import CHUNK_ELEMENTS

    return CHUNK_ELEMENTS.get(kind, CHUNK_ELEMENTS["cpu"])


def suggest_fixes(config: Any, available: Devices, work: Workload, limit: int = 5) -> list[Fix]:
    """Options that make `config` fit `available`: single changes first (LoRA, gradient checkpointing, the
    largest micro-batch that fits, Ray layouts of FSDP learners beside rollout workers on a multi-GPU machine,
    a smaller vLLM share), then pairs of them when no single one does."""
    singles = _candidates(config, available)
    found: list[Fix] = []
    swept: set[tuple[str, ...]] = set()

    def attempt(changes: dict[str, Any]) -> None:
        key = tuple(sorted(changes))
        sweep = any(name in SWEPT for name in changes)
        if sweep and key in swept:  # a sweep is tried largest value first: keep the first that fits
            return
        fix = _try(config, available, work, changes)
        if fix is not None:
            found.append(fix)
            if sweep:
                swept.add(key)

    for changes in singles:
        attempt(changes)
    if not found:
        for i, first in enumerate(singles):
            for second in singles[i + 1 :]:
                if not set(first) & set(second):
                    attempt({**first, **second})
    return found[:limit]


SWEPT = ("micro_batch_size", "vllm_gpu_memory_utilization")
"""Options tried over a range of values, largest first."""


def _candidates(config: Any, available: Devices) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if config.lora_rank == 0:
        out.append({"lora_rank": LORA_FIX_RANK})
    if not config.gradient_checkpointing:
        out.append({"gradient_checkpointing": True})
    size = config.micro_batch_size // 2
    while size >= 1:
        out.append({"micro_batch_size": size})
        size //= 2
    if available.kind == "cuda" and available.count >= 3:
        for learners in LAYOUT_LEARNERS:
            if available.count - learners >= 1:
                out.append(
                    {
                        "ray_workers": available.count - learners,
                        "ray_worker_gpus": 1.0,
                        "ray_learners": learners,
                        "ray_learner_gpus": 1.0,
                        "ray_learner_strategy": "fsdp",
                    }
                )
    asked = config.ray_workers * config.ray_worker_gpus + config.ray_learners * config.ray_learner_gpus
    if config.ray_workers > 0 and available.kind == "cuda" and asked > available.count:
        out.append({"ray_workers": 0, "ray_worker_gpus": 0.0, "ray_learners": 1, "ray_learner_gpus": 0.0})
    if config.generator == "vllm" and config.ray_workers == 0 and available.kind == "cuda":
        share = round(config.vllm_gpu_memory_utilization - 0.1, 2)
        while share >= 0.2:
            out.append({"vllm_gpu_memory_utilization": share})
            share = round(share - 0.1, 2)
    return out


def _try(config: Any, available: Devices, work: Workload, changes: dict[str, Any]) -> Fix | None:
    from spiral_train.config import ConfigError, check_values

    variant = dataclasses.replace(config, **changes)
    try:
        check_values(variant)
    except ConfigError:
        return None
    plan = _plan(variant, available, work)
    if not plan.fits:
        return None
    return Fix(_flags(changes), max(d.total for d in plan.devices), available.capacity)


def _flags(changes: dict[str, Any]) -> str:
    parts = []
    for name, value in changes.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, float) and value.is_integer():
            parts.append(f"{flag} {int(value)}")
        else:
            parts.append(f"{flag} {value}")
    return " ".join(parts)
