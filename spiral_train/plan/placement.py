"""Who holds what on which device: the one-process trainer, or Ray's rollout workers and learner ranks.

One process: the learner and its generator share one device. A vLLM engine on a GPU sleeps while the learner
updates (sleep mode frees its weights and KV cache), so the device's peak is the larger of the update and
generation (learner state beside the awake engine); on CPU vLLM has no sleep mode and the engine stays.

Ray: learner ranks are placed first, then rollout workers, each first-fit by its GPU request (a request of 0
on GPUs lands on device 0, as it does today); a device's peak is the sum of its processes' peaks (in async
mode they peak together). The driver holds no model on a GPU; on CPU its copy of the weights is counted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from spiral_train.plan.devices import Devices
from spiral_train.plan.memory import (
    BF16,
    FP32,
    RUNTIME_BYTES,
    LearnerSetup,
    hf_generation_bytes,
    kv_bytes_per_token,
    update_moments,
    update_peak,
)
from spiral_train.plan.shapes import ModelShape
from spiral_train.plan.workload import Workload

CPU_KV_CACHE_MB = 256
"""vLLM's KV cache on CPU when `vllm_kv_cache_mb` is unset (generation/vllm.py's default)."""


@dataclass
class Column:
    """What one process holds in one phase: `rows` name -> bytes; `note` says which moment it is."""

    process: str
    phase: str
    rows: dict[str, int]
    note: str = ""
    learner_update: bool = False
    """The learner's update: its rows are what `MemoryPlan.update_peak_bytes` reports."""

    @property
    def total(self) -> int:
        return sum(self.rows.values())


@dataclass
class DevicePlan:
    index: int
    kind: str
    capacity: int
    holders: list[str] = field(default_factory=list)
    columns: list[Column] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Why this device cannot work whatever the totals (an engine with no room for its KV cache, ...)."""

    @property
    def total(self) -> int:
        """What the device must hold at its peak: per process the largest phase, summed over processes."""
        peaks: dict[str, int] = {}
        for column in self.columns:
            peaks[column.process] = max(peaks.get(column.process, 0), column.total)
        return sum(peaks.values())

    @property
    def fits(self) -> bool:
        return self.total <= self.capacity and not self.problems


@dataclass(frozen=True)
class RunFacts:
    """The options placement reads (the `TrainConfig` fields of the same names), and the derived setup."""

    ray_workers: int
    ray_worker_gpus: float
    ray_learners: int
    ray_learner_gpus: float
    ray_learner_strategy: str
    generator: str
    bf16: bool
    gradient_checkpointing: bool
    kl_coef: float
    vllm_gpu_memory_utilization: float
    vllm_kv_cache_mb: int | None
    vllm_max_model_len: int | None
    pool_every: int
    opponent: str
    policy_average: str
    max_position_embeddings: int
    chunk_elements: int

    @property
    def frozen_opponent(self) -> bool:
        """A second model beside the learner's: a pool snapshot, or a checkpoint opponent (a folder)."""
        return self.pool_every > 0 or self.opponent not in ("self", "random", "strong")

    @classmethod
    def from_config(cls, config: Any, max_position_embeddings: int, chunk_elements: int) -> RunFacts:
        names = [n for n in cls.__dataclass_fields__ if n not in ("max_position_embeddings", "chunk_elements")]
        return cls(
            **{n: getattr(config, n) for n in names},
            max_position_embeddings=max_position_embeddings,
            chunk_elements=chunk_elements,
        )


def place(shape: ModelShape, work: Workload, run: RunFacts, devices: Devices) -> tuple[list[DevicePlan], list[str]]:
    """Per-device plans and run-wide problems (more GPUs asked of Ray than there are)."""
    plans = [DevicePlan(i, devices.kind, devices.capacity) for i in range(devices.count)]
    cuda = devices.kind == "cuda"
    if run.ray_workers == 0:
        _one_process(plans[0], shape, work, run, cuda)
        if devices.count > 1:
            for plan in plans[1:]:
                plan.holders.append("idle (a one-process run uses one device; Ray workers and ranks use the rest)")
        return plans, []
    problems = []
    learner_setup = _learner_setup(shape, run, cuda, ranks=run.ray_learners)
    kind = f"{run.ray_learner_strategy}, {run.ray_learners} ranks" if run.ray_learners > 1 else "one rank"
    actors: list[tuple[str, float, list[Column]]] = []
    for rank in range(run.ray_learners):
        name = f"learner rank {rank} ({kind})"
        peak = update_peak(shape, work, learner_setup)
        rows = {**peak.rows, "runtime": RUNTIME_BYTES}
        column = Column(name, "update", rows, _update_note(shape, work, learner_setup), learner_update=True)
        actors.append((name, run.ray_learner_gpus if cuda else 0.0, [column]))
    for worker in range(run.ray_workers):
        name = f"rollout worker {worker}"
        actors.append(
            (name, run.ray_worker_gpus if cuda else 0.0, [_worker_column(name, shape, work, run, cuda, devices)])
        )
    if not cuda:  # the driver's host memory is this device's
        sync = {
            "weights": shape.params * FP32,
            "merged LoRA weights": shape.params * FP32 if shape.lora else 0,
            "object store": shape.params * FP32,
            "runtime": RUNTIME_BYTES,
        }
        note = "its copy of the model and, after each update, the weights it sends the workers"
        plans[0].columns.append(Column("driver", "weight sync", {k: v for k, v in sync.items() if v}, note))
        plans[0].holders.append("the driver")
    asked = sum(gpus for _, gpus, _ in actors)
    if cuda and asked > devices.count + 1e-9:
        problems.append(
            f"Ray is asked for {asked:g} GPUs ({run.ray_learners} learner ranks x {run.ray_learner_gpus:g} + "
            f"{run.ray_workers} workers x {run.ray_worker_gpus:g}) but there are {devices.count}: it would wait forever"
        )
    free = [1.0] * devices.count
    for name, gpus, columns in actors:
        index = _first_fit(free, gpus) if cuda else 0
        if index is None:
            continue
        plans[index].holders.append(name)
        plans[index].columns.extend(columns)
        for column in columns:
            if column.process.startswith("rollout worker"):
                _check_engine(plans[index], column, shape, run)
    if cuda and run.ray_learners > 1 and run.ray_learner_gpus < 1:
        problems.append(
            f"ray_learner_gpus={run.ray_learner_gpus:g}: NCCL ranks need a whole GPU each (two on one GPU fail with "
            "'Duplicate GPU detected'); give each learner rank --ray-learner-gpus 1"
        )
    return plans, problems


def _first_fit(free: list[float], gpus: float) -> int | None:
    """The device an actor asking `gpus` lands on (the first of several whole ones), marking them taken; a
    request of 0 lands on device 0 and takes nothing; None when no device has room."""
    if gpus <= 0:
        return 0
    if gpus >= 1:
        whole = [i for i, left in enumerate(free) if left >= 1.0 - 1e-9][: int(gpus)]
        if len(whole) < int(gpus):
            return None
        for i in whole:
            free[i] = 0.0
        return whole[0]
    for index, left in enumerate(free):
        if left >= gpus - 1e-9:
            free[index] = left - gpus
            return index
    return None


def _learner_setup(shape: ModelShape, run: RunFacts, cuda: bool, ranks: int = 1) -> LearnerSetup:
    autocast = run.bf16 and cuda
    reference = 0 if run.kl_coef <= 0 or shape.lora else (BF16 if autocast else FP32)
    fsdp = run.ray_workers > 0 and run.ray_learner_strategy == "fsdp" and ranks > 1
    return LearnerSetup(
        autocast=autocast,
        checkpointing=run.gradient_checkpointing,
        reference=reference,
        shards=ranks if fsdp else 1,
        ddp_world=ranks if not fsdp else 1,
        cuda=cuda,
        chunk_elements=run.chunk_elements,
    )


def _update_note(shape: ModelShape, work: Workload, setup: LearnerSetup) -> str:
    """Which moment the update peaks at, and its activations with checkpointing switched the other way."""
    peak = update_peak(shape, work, setup)
    other = update_moments(shape, work, dataclasses.replace(setup, checkpointing=not setup.checkpointing))
    activations = max(m.rows.get("activations", 0) for m in other)
    total = max(m.total for m in other) + RUNTIME_BYTES
    switch = "without" if setup.checkpointing else "with"
    return (
        f"peak: {peak.name}; {switch} gradient checkpointing: activations {activations / 1e9:.2f} GB, "
        f"update {total / 1e9:.1f} GB"
    )


def _engine_dtype(run: RunFacts, cuda: bool) -> int:
    return BF16 if run.bf16 and cuda else FP32


def _one_process(plan: DevicePlan, shape: ModelShape, work: Workload, run: RunFacts, cuda: bool) -> None:
    name = "trainer"
    if run.generator == "vllm":
        sampler = "a vLLM engine " + ("asleep during the update" if cuda else "(no sleep mode on CPU)")
    else:
        sampler = "transformers sampling from the learner's weights"
    plan.holders.append(f"the trainer, one process: the learner and {sampler}")
    setup = _learner_setup(shape, run, cuda)
    peak = update_peak(shape, work, setup)
    update = {**peak.rows, "runtime": RUNTIME_BYTES}
    resident = {k: peak.rows[k] for k in ("weights", "optimizer state", "reference model")}
    if run.frozen_opponent:
        resident["opponent model"] = update["opponent model"] = shape.params * FP32
    if run.policy_average in ("auto", "ema"):  # one process: "auto" keeps the average here
        resident["policy average"] = update["policy average"] = shape.trainable * FP32
    note = _update_note(shape, work, setup)
    if run.generator == "vllm":
        engine = _engine_rows(shape, run, cuda, plan.capacity)
        if not cuda:  # no sleep mode: the engine stays beside the update
            update.update(engine)
            note += "; the engine stays (no sleep mode on CPU)"
        plan.columns.append(Column(name, "update", update, note, learner_update=True))
        generation = Column(name, "generation", {**resident, **engine, "runtime": RUNTIME_BYTES}, "engine awake")
        plan.columns.append(generation)
        _check_engine(plan, generation, shape, run)
        if shape.lora:
            sync = {
                **resident,
                "engine weights": engine["engine weights"],
                # the delta B @ A and the merged layer, one layer at a time
                "merged LoRA weights": 2 * shape.lora_largest_targeted * FP32,
                "runtime": RUNTIME_BYTES,
            }
            plan.columns.append(Column(name, "weight sync", sync, "lora.merged_weights: one merged layer at a time"))
        return
    plan.columns.append(Column(name, "update", update, note, learner_update=True))
    hf = hf_generation_bytes(shape, work, setup.autocast)
    plan.columns.append(
        Column(name, "generation", {**resident, **hf, "runtime": RUNTIME_BYTES}, "transformers generate (estimate)")
    )


def _engine_rows(shape: ModelShape, run: RunFacts, cuda: bool, capacity: int) -> dict[str, int]:
    """A vLLM engine: its weights (bf16 on a GPU with bf16, else fp32) and KV cache (with its working memory):
    on a GPU `vllm_gpu_memory_utilization` x the device less the weights, or `vllm_kv_cache_mb`."""
    weights = shape.params * _engine_dtype(run, cuda)
    if run.vllm_kv_cache_mb is not None:
        kv = run.vllm_kv_cache_mb * 2**20
    elif cuda:
        kv = int(run.vllm_gpu_memory_utilization * capacity) - weights
    else:
        kv = CPU_KV_CACHE_MB * 2**20
    return {"engine weights": weights, "KV cache": kv}


def _worker_column(name: str, shape: ModelShape, work: Workload, run: RunFacts, cuda: bool, devices: Devices) -> Column:
    opponent = {"opponent model": shape.params * FP32} if run.frozen_opponent else {}
    if run.generator == "vllm":
        rows = _engine_rows(shape, run, cuda, devices.capacity)
        if not cuda:
            rows["weights"] = shape.params * FP32  # the worker's transformers copy, on CPU
        return Column(name, "generation", {**rows, **opponent, "runtime": RUNTIME_BYTES}, "vLLM engine, never asleep")
    hf = hf_generation_bytes(shape, work, run.bf16 and cuda)
    rows = {"weights": shape.params * FP32, **hf, **opponent, "runtime": RUNTIME_BYTES}
    return Column(name, "generation", rows, "transformers generate (estimate)")


def _check_engine(plan: DevicePlan, column: Column, shape: ModelShape, run: RunFacts) -> None:
    """vLLM refuses to start when its KV cache cannot hold one sequence of the longest length it accepts."""
    kv = column.rows.get("KV cache", 0)
    if "engine weights" not in column.rows:
        return
    longest = run.vllm_max_model_len or run.max_position_embeddings
    need = longest * kv_bytes_per_token(shape, _engine_dtype(run, plan.kind == "cuda"))
    if kv < need:
        fix = (
            "raise --vllm-gpu-memory-utilization"
            if plan.kind == "cuda" and run.vllm_kv_cache_mb is None
            else "raise --vllm-kv-cache-mb"
        )
        plan.problems.append(
            f"{column.process}: the engine's KV cache ({max(kv, 0) / 1e9:.2f} GB) cannot hold one sequence of "
            f"{longest:,} tokens ({need / 1e9:.2f} GB); {fix}, or lower --vllm-max-model-len"
        )
