"""Pure checks of a `TrainConfig`'s values: each bad value raises `ConfigError` naming the option and what it
accepts. No side effects and nothing read from this machine (no env built, no file stat, no package looked up);
`make_config` runs them, and `run_checks` does the rest, once a run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import spiral_envs
from spiral_train.config.schema import (
    DEVICES,
    EVAL_OPPONENTS,
    GENERATORS,
    KL_ANCHORS,
    LEARNER_STRATEGIES,
    LOSS_AGGREGATIONS,
    LR_SCHEDULES,
    POLICY_AVERAGES,
    RAE_MODES,
    ConfigError,
)
from spiral_train.config.views import RaySettings, policy_average_decay

if TYPE_CHECKING:
    from spiral_train.config.schema import TrainConfig

_POSITIVE = (
    "games_per_step",
    "num_envs",
    "steps",
    "num_epochs",
    "micro_batch_size",
    "max_new_tokens",
    "save_every",
    "keep_checkpoints",
    "generation_batch_size",
    "eval_probe_positions",
    "eval_reasoning_problems",
    "eval_reasoning_samples",
    "eval_reasoning_max_new_tokens",
)
_NON_NEGATIVE = (
    "eval_every",
    "eval_games",
    "warmup_steps",
    "log_transcripts",
    "top_k",
    "eval_top_k",
    "eval_probe_samples",
)
MAX_NEW_TOKENS_CAP = 131_072
"""The longest answer any run may ask for (`max_new_tokens`, `eval_reasoning_max_new_tokens`): generation
preallocates prompt + answer positions, so 10^9 tokens would fill a machine's memory before the first step;
`run_checks` also holds it under the model's own `max_position_embeddings` where that is readable."""
SEED_LIMIT = 2**32
"""`seed` is in [0, SEED_LIMIT): every generator seeded from it (Python, torch, NumPy) takes such a seed."""


def check_values(c: TrainConfig) -> None:
    """Raise `ConfigError` naming the first bad option and what it accepts. Every number must be finite (no
    option takes nan or inf, nor does any number in `env_kwargs`), then in its option's range."""
    _check_finite(c)
    _choice("rae", c.rae, RAE_MODES)
    if c.state_baseline and c.rae == "batch":
        raise ConfigError('state_baseline=True needs rae="ema" or "none": "batch" rescales each role by its std')
    _choice("loss_aggregation", c.loss_aggregation, LOSS_AGGREGATIONS)
    _choice("lr_schedule", c.lr_schedule, LR_SCHEDULES)
    _choice("template", c.template, spiral_envs.TEMPLATE_NAMES)
    _choice("device", c.device, DEVICES)
    _choice("generator", c.generator, GENERATORS)
    if c.history is not None:
        _choice("history", c.history, spiral_envs.HISTORY_MODES)
    if not 0.0 < c.vllm_gpu_memory_utilization <= 1.0:
        raise ConfigError(f"vllm_gpu_memory_utilization={c.vllm_gpu_memory_utilization} must be in (0, 1]")
    for name in ("vllm_kv_cache_mb", "vllm_max_model_len", "tiny_warmup_steps"):
        if getattr(c, name) is not None:
            _positive_int(name, getattr(c, name))
    for name in _POSITIVE:
        _positive_int(name, getattr(c, name))
    for name in _NON_NEGATIVE:
        if getattr(c, name) < 0:
            raise ConfigError(f"{name}={getattr(c, name)} must be >= 0")
    for name in ("max_new_tokens", "eval_reasoning_max_new_tokens"):
        if getattr(c, name) > MAX_NEW_TOKENS_CAP:
            raise ConfigError(
                f"{name}={getattr(c, name)} is over the cap of {MAX_NEW_TOKENS_CAP} tokens: generation preallocates "
                "every position; the paper uses 4096"
            )
    if isinstance(c.seed, bool) or not isinstance(c.seed, int) or not 0 <= c.seed < SEED_LIMIT:
        raise ConfigError(f"seed={c.seed!r} must be an integer in [0, 2**32)")
    for name in ("top_p", "eval_top_p"):
        if not 0.0 < getattr(c, name) <= 1.0:
            raise ConfigError(f"{name}={getattr(c, name)} must be in (0, 1] (1.0 turns nucleus sampling off)")
    if not 0.0 <= c.rae_decay < 1.0:
        raise ConfigError(f"rae_decay={c.rae_decay} must be in [0, 1) (the paper uses 0.95)")
    if c.lr <= 0:
        raise ConfigError(f"lr={c.lr} must be > 0 (the paper uses 1e-6 for Qwen3-4B-Base)")
    if c.temperature <= 0:
        raise ConfigError(f"temperature={c.temperature} must be > 0 for sampling (the paper uses 1.0)")
    if c.eval_temperature < 0:
        raise ConfigError(f"eval_temperature={c.eval_temperature} must be >= 0 (0 is greedy)")
    if c.clip_eps <= 0:
        raise ConfigError(f"clip_eps={c.clip_eps} must be > 0")
    if not (c.tis_cap == 0 or c.tis_cap >= 1):
        raise ConfigError(f"tis_cap={c.tis_cap} must be >= 1, or 0 to turn truncated importance sampling off")
    if c.max_grad_norm <= 0:
        raise ConfigError(f"max_grad_norm={c.max_grad_norm} must be > 0")
    if c.kl_coef < 0:
        raise ConfigError(f"kl_coef={c.kl_coef} must be >= 0 (0 turns the KL term off)")
    _choice("policy_average", c.policy_average, POLICY_AVERAGES)
    if not 0.0 <= c.policy_average_decay < 1.0:
        raise ConfigError(f"policy_average_decay={c.policy_average_decay} must be in [0, 1)")
    if c.policy_average == "ema" and c.ray_workers > 0:
        raise ConfigError(
            f"policy_average={c.policy_average} runs in one process (evaluation on Ray workers samples the learner's "
            "newest weights): set policy_average auto or none with ray_workers > 0"
        )
    if c.eval_every == 0 and c.eval_reasoning:
        raise ConfigError(
            f"eval_reasoning={c.eval_reasoning} is graded at each evaluation, and eval_every=0 turns evaluation off: "
            "set eval_every >= 1, or drop eval_reasoning"
        )
    _choice("kl_anchor", c.kl_anchor, KL_ANCHORS)
    averaged = policy_average_decay(c.policy_average, c.policy_average_decay, c.ray_workers) is not None
    if c.kl_anchor == "average" and (not averaged or c.lora_rank > 0):
        raise ConfigError(
            "kl_anchor=average anchors to the policy average, which needs policy_average auto or ema, one process "
            "(ray_workers 0) and full fine-tuning (lora_rank 0); or set kl_anchor start"
        )
    if c.weight_decay < 0:
        raise ConfigError(f"weight_decay={c.weight_decay} must be >= 0 (0 turns it off)")
    if not all(0.0 <= beta < 1.0 for beta in c.adam_betas):
        raise ConfigError(f"adam_betas={list(c.adam_betas)} must be two numbers in [0, 1) (the default is 0.9 0.95)")
    _check_games(c)
    _check_pool(c)
    _check_ray(c)
    _check_lora(c)
    _check_plan(c)


def _check_finite(c: TrainConfig) -> None:
    for f in dataclasses.fields(c):
        value = getattr(c, f.name)
        if any(not math.isfinite(number) for number in _floats(value)):
            raise ConfigError(f"{f.name}={value!r} must be finite: no option takes nan or inf")


def _floats(value: Any) -> Iterator[float]:
    """Every float in `value`, a number or plain data holding numbers (lists, tuples, dict values)."""
    if isinstance(value, float):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _floats(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _floats(item)


def _check_games(c: TrainConfig) -> None:
    if not c.env_ids:
        raise ConfigError("env_ids is empty; name at least one game, e.g. KuhnPoker-v1")
    weights = c.env_weights
    if weights is not None and (len(weights) != len(c.env_ids) or min(weights) < 0 or sum(weights) <= 0):
        raise ConfigError(f"env_weights={weights} must give one weight >= 0 per env id {c.env_ids}, not all 0")
    for kind in c.eval_opponents:
        _choice("eval_opponents", kind, EVAL_OPPONENTS)
    for key in c.env_kwargs:
        if key not in c.env_ids and key not in (c.eval_env_ids or []):
            raise ConfigError(f"env_kwargs names {key!r}, which is not in env_ids {c.env_ids} or eval_env_ids")


def _check_pool(c: TrainConfig) -> None:
    """Pool options; a pool replaces the opponent of some self-play games, so it needs opponent "self"."""
    if isinstance(c.pool_every, bool) or not isinstance(c.pool_every, int) or c.pool_every < 0:
        raise ConfigError(f"pool_every={c.pool_every!r} must be an integer >= 0 (0 turns opponent pools off)")
    _positive_int("pool_size", c.pool_size)
    if not 0.0 <= c.pool_share <= 1.0:
        raise ConfigError(f"pool_share={c.pool_share} must be in [0, 1] (the share of each step's games vs the pool)")
    if c.pool_every > 0 and c.opponent != "self":
        raise ConfigError(
            f"pool_every={c.pool_every} needs opponent='self', not {c.opponent!r}: the pool draws the opponent of "
            "a share of self-play games; set opponent: self, or pool_every: 0 to train against the fixed opponent"
        )


def _check_ray(c: TrainConfig) -> None:
    for name in ("ray_workers", "max_staleness", "ray_chunk_games"):
        value = getattr(c, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{name}={value!r} must be an integer >= 0")
    _positive_int("ray_learners", c.ray_learners)
    if c.ray_max_restarts < -1:
        raise ConfigError(f"ray_max_restarts={c.ray_max_restarts} must be >= 0, or -1 for no limit")
    for name in ("ray_worker_cpus", "ray_learner_cpus", "ray_worker_gpus", "ray_learner_gpus"):
        if getattr(c, name) < 0:
            raise ConfigError(f"{name}={getattr(c, name)} must be >= 0")
    if c.ray_learner_cpus == 0 and c.ray_learner_gpus == 0:
        raise ConfigError(
            "ray_learner_cpus=0 and ray_learner_gpus=0: a learner rank's placement bundle must hold something; "
            "use --ray-learner-cpus 1"
        )
    if c.ray_learner_timeout_s <= 0:
        raise ConfigError(f"ray_learner_timeout_s={c.ray_learner_timeout_s} must be > 0 (seconds)")
    # without workers only the ranges apply (at most one GPU per worker, whole GPUs per rank), not the CUDA layout
    problem = ray_gpu_problem(RaySettings.from_config(c), uses_cuda=c.device == "cuda" and c.ray_workers > 0)
    if problem is not None:
        raise ConfigError(problem)
    for name, amount in c.ray_worker_resources.items():
        if name in ("CPU", "GPU") or isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
            raise ConfigError(
                f"ray_worker_resources={c.ray_worker_resources!r}: each entry must be a custom resource "
                "name and an amount >= 0 (CPUs and GPUs are ray_worker_cpus and ray_worker_gpus)"
            )
    _choice("ray_learner_strategy", c.ray_learner_strategy, LEARNER_STRATEGIES)
    if c.ray_workers > 0 and c.ray_learner_strategy == "fsdp" and c.ray_learners < 2:
        raise ConfigError(
            f"ray_learner_strategy='fsdp' with ray_learners={c.ray_learners}: sharding needs 2 ranks or more; "
            "raise ray_learners, or use ray_learner_strategy: ddp"
        )
    if c.ray_workers == 0 and (c.async_mode or c.ray_learners > 1 or c.ray_address):
        raise ConfigError("async_mode, ray_learners > 1 and ray_address need Ray rollout workers: set ray_workers >= 1")


def ray_gpu_problem(c: RaySettings, uses_cuda: bool) -> str | None:
    """What is wrong with the GPUs the Ray actors ask for, in one line naming the option and the fix (None:
    nothing). `uses_cuda`: the actors will run on CUDA (see `distributed.driver.run_uses_cuda`).

    Ray sets CUDA_VISIBLE_DEVICES only for an actor that asks for GPUs; one that asks for none sees every
    GPU of its node and uses cuda:0, so on CUDA every actor must ask. A learner rank gets a whole GPU
    (NCCL refuses two ranks on one device); a rollout worker any share up to one (it uses one device), and
    a vLLM engine in it may take no more of the GPU's memory than that share.
    """
    learner, worker = c.ray_learner_gpus, c.ray_worker_gpus
    if learner != int(learner):
        return (
            f"ray_learner_gpus={learner:g}: a learner rank needs a whole GPU (two NCCL ranks cannot share "
            "one); use --ray-learner-gpus 1"
        )
    if worker > 1:
        return f"ray_worker_gpus={worker:g}: a rollout worker uses one device; use --ray-worker-gpus 1 or less"
    if c.device == "cpu" and c.ray_workers > 0 and (learner > 0 or worker > 0):
        return (
            f"device=cpu with ray_worker_gpus={worker:g} and ray_learner_gpus={learner:g}: a CPU run's actors "
            "use no GPU, and Ray would wait for GPUs a CPU cluster does not have; add --ray-worker-gpus 0 "
            "--ray-learner-gpus 0"
        )
    if not uses_cuda:
        return None
    if learner < 1:
        return (
            f"ray_learner_gpus={learner:g} on CUDA: every learner rank would land on cuda:0; use "
            "--ray-learner-gpus 1 (a whole GPU per rank), or --device cpu"
        )
    if worker <= 0:
        return (
            f"ray_worker_gpus={worker:g} on CUDA: every rollout worker would land on cuda:0; use "
            "--ray-worker-gpus 1 (or a share such as 0.5), or --device cpu"
        )
    if c.generator == "vllm" and c.vllm_gpu_memory_utilization > worker:
        return (
            f"vllm_gpu_memory_utilization={c.vllm_gpu_memory_utilization:g} with ray_worker_gpus={worker:g}: "
            f"each worker's engine would take more of a GPU than its share, and workers sharing a GPU would "
            f"not fit; use --vllm-gpu-memory-utilization {worker:g} or less (or more --ray-worker-gpus)"
        )
    return None


def _check_lora(c: TrainConfig) -> None:
    if isinstance(c.lora_rank, bool) or not isinstance(c.lora_rank, int) or c.lora_rank < 0:
        raise ConfigError(f"lora_rank={c.lora_rank!r} must be an integer >= 0 (0 fine-tunes every weight)")
    if c.lora_alpha <= 0:
        raise ConfigError(f"lora_alpha={c.lora_alpha} must be > 0 (the adapter scale is lora_alpha/lora_rank)")
    if not 0.0 <= c.lora_dropout < 1.0:
        raise ConfigError(f"lora_dropout={c.lora_dropout} must be in [0, 1) (0 keeps updates on-policy)")
    if not c.lora_target_modules:
        raise ConfigError("lora_target_modules is empty; use [all-linear] or module names such as q_proj")


def _check_plan(c: TrainConfig) -> None:
    if c.plan_prompt_tokens is not None:
        _positive_int("plan_prompt_tokens", c.plan_prompt_tokens)
    if c.devices is not None:
        from spiral_train.plan.devices import DeviceError, parse_devices

        try:
            parse_devices(c.devices)
        except DeviceError as err:
            raise ConfigError(str(err)) from None


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not allowed; choose one of {list(allowed)}")


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value!r} must be a positive integer")
