"""Views of a `TrainConfig`: the small frozen settings each component takes instead of the whole config.

Each is plain data (it crosses to Ray actors as is) holding the `TrainConfig` fields of the same meaning, whose
docstrings say what each does; `from_config` builds it from a run's config, here and nowhere else. A component
that needs no training run (`spiral-eval`) builds its settings directly.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from spiral_train.config.schema import ConfigError
from spiral_train.rollout.records import FROZEN, RANDOM, STRONG

if TYPE_CHECKING:
    from spiral_train.config.schema import TrainConfig


def opponent_kind(opponent: str) -> str | None:
    """The seat kind of the `opponent` option: None for "self", "random", "strong", or "frozen" for a
    checkpoint folder. The one place that decides whether the opponent is a frozen checkpoint."""
    if opponent == "self":
        return None
    return opponent if opponent in (RANDOM, STRONG) else FROZEN


def policy_average_decay(policy_average: str, decay: float, ray_workers: int) -> float | None:
    """The EMA decay of the weights the run evaluates and ships, or None where it ships the last iterate:
    "ema" always, "auto" in one process (on Ray, evaluation samples the workers' newest weights), "none" never.
    The one place that decides it."""
    return decay if policy_average == "ema" or (policy_average == "auto" and ray_workers == 0) else None


def anchors_to_average(kl_anchor: str, averaged: bool, lora_rank: int) -> bool:
    """Whether the KL term pulls towards the policy average rather than the starting model: "average", or
    "auto" where the run keeps an average (`policy_average_decay` is not None) and trains every weight (with
    LoRA the anchor is the base, adapters off, which costs no memory)."""
    return kl_anchor == "average" or (kl_anchor == "auto" and averaged and lora_rank == 0)


@dataclass(frozen=True)
class Sampling:
    """How a model seat samples its answers: prompt template, temperature, answer length, truncation."""

    template: str = "qwen3"
    temperature: float = 1.0
    max_new_tokens: int = 8
    truncated_is_invalid: bool = True
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.temperature < 0 or self.top_k < 0 or not 0 < self.top_p <= 1 or self.max_new_tokens < 1:
            raise ConfigError(
                f"sampling {self}: temperature and top_k must be >= 0, top_p in (0, 1], max_new_tokens >= 1"
            )

    @classmethod
    def from_config(cls, config: TrainConfig) -> Sampling:
        return _pick(cls, config)


@dataclass(frozen=True)
class GenerationSettings:
    """Which backend generates and how: `generator`, `generation_batch_size`, `bf16`, `seed` and the vllm_*
    options."""

    generator: str = "hf"
    generation_batch_size: int = 256
    bf16: bool = False
    seed: int = 0
    vllm_gpu_memory_utilization: float = 0.3
    vllm_kv_cache_mb: int | None = None
    vllm_max_model_len: int | None = None

    @classmethod
    def from_config(cls, config: TrainConfig) -> GenerationSettings:
        return _pick(cls, config)


@dataclass(frozen=True)
class LoraSettings:
    """LoRA adapters to add to a model: the lora_* options; rank 0 adds none."""

    rank: int = 0
    alpha: float = 32.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("all-linear",)

    @classmethod
    def from_config(cls, config: TrainConfig) -> LoraSettings:
        c = config
        return cls(c.lora_rank, c.lora_alpha, c.lora_dropout, tuple(c.lora_target_modules))


@dataclass(frozen=True)
class ModelSource:
    """Where the model comes from and how it is prepared to train: `model` (a folder or hub id; None: the tiny
    embedded model, warmed up on the games `tiny_env_ids` with options `tiny_env_kwargs`, as JSON, in
    `tiny_template`, for `tiny_warmup_steps` (None: as its games need), and shaped for vLLM's CPU attention when
    `for_vllm`), gradient checkpointing, LoRA."""

    model: str | None = None
    tiny_env_ids: tuple[str, ...] = ("KuhnPoker-v1",)
    tiny_env_kwargs: tuple[tuple[str, str], ...] = ()
    tiny_template: str = "qwen3"
    tiny_warmup_steps: int | None = None
    for_vllm: bool = False
    gradient_checkpointing: bool = False
    lora: LoraSettings = field(default_factory=LoraSettings)

    @classmethod
    def from_config(cls, config: TrainConfig) -> ModelSource:
        """The run's model: every game of the run (training and evaluation) warms the tiny one up."""
        kwargs = config.game_kwargs()
        return cls(
            model=config.model,
            tiny_env_ids=tuple(kwargs),
            tiny_env_kwargs=tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in kwargs.items())),
            tiny_template=config.template,
            tiny_warmup_steps=config.tiny_warmup_steps,
            for_vllm=config.generator == "vllm",
            gradient_checkpointing=config.gradient_checkpointing,
            lora=LoraSettings.from_config(config),
        )

    def plain(self, model: str) -> ModelSource:
        """`model` loaded only to hold weights: no gradient checkpointing, no new adapters (a LoRA folder merged)."""
        return dataclasses.replace(self, model=model, gradient_checkpointing=False, lora=LoraSettings())


@dataclass(frozen=True)
class PoolSettings:
    """Opponent pools: the pool_* options, and the seed and generation options of the pool's frozen seat."""

    pool_every: int = 0
    pool_share: float = 0.5
    pool_size: int = 4
    seed: int = 0
    generation_batch_size: int = 256
    bf16: bool = False

    @classmethod
    def from_config(cls, config: TrainConfig) -> PoolSettings:
        return _pick(cls, config)


@dataclass(frozen=True)
class LearnerSettings:
    """The options the update reads: the `TrainConfig` fields of the same names."""

    lr: float
    adam_betas: tuple[float, float]
    weight_decay: float
    lr_schedule: str
    warmup_steps: int
    steps: int
    num_epochs: int
    micro_batch_size: int
    clip_eps: float
    kl_coef: float
    loss_aggregation: str
    max_grad_norm: float
    max_new_tokens: int
    temperature: float
    top_k: int
    top_p: float
    bf16: bool
    seed: int
    tis_cap: float = 2.0
    offload_optimizer: bool = False

    @classmethod
    def from_config(cls, config: TrainConfig) -> LearnerSettings:
        return _pick(cls, config)


def _pick(cls: Any, config: TrainConfig) -> Any:
    """`cls` from the config fields of the same names."""
    return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class WorkerSettings:
    """What a Ray rollout worker plays with, sent to its actor as is: the model to load (`source`, plain: the
    driver sends merged weights), how its seats sample and generate, its device, games at once and their
    options, and the folder of a frozen checkpoint opponent (None: the opponent is not one)."""

    model: ModelSource
    sampling: Sampling
    generation: GenerationSettings
    device: str = "auto"
    num_envs: int = 256
    game_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    frozen_opponent: str | None = None

    @classmethod
    def from_config(cls, config: TrainConfig, source: str) -> WorkerSettings:
        """`source`: the run's starting model (a folder), which every worker loads first."""
        return cls(
            model=ModelSource.from_config(config).plain(source),
            sampling=Sampling.from_config(config),
            generation=GenerationSettings.from_config(config),
            device=config.device,
            num_envs=config.num_envs,
            game_kwargs=config.game_kwargs(),
            frozen_opponent=config.opponent if opponent_kind(config.opponent) == FROZEN else None,
        )


@dataclass(frozen=True)
class LearnerRankSettings:
    """What a Ray learner rank trains with, sent to its actor as is: the update's settings, the model to load
    (`source`, with LoRA and gradient checkpointing as the run asks), its device, the strategy and the
    collective timeout."""

    learner: LearnerSettings
    model: ModelSource
    device: str = "auto"
    ray_learner_strategy: str = "ddp"
    ray_learner_timeout_s: float = 1800.0

    @classmethod
    def from_config(cls, config: TrainConfig, source: str) -> LearnerRankSettings:
        model = dataclasses.replace(ModelSource.from_config(config), model=source)
        c = config
        return cls(LearnerSettings.from_config(c), model, c.device, c.ray_learner_strategy, c.ray_learner_timeout_s)


@dataclass(frozen=True)
class RaySettings:
    """The Ray layout of a run, for the driver, the rollout pool and the learner group: the ray_* options and
    the few others they read (the step's games, async mode, seed, transcripts, device, backend). Built from a
    run's config only, so it repeats none of the config's defaults."""

    ray_workers: int
    ray_learners: int
    ray_address: str | None
    async_mode: bool
    max_staleness: int
    ray_worker_cpus: float
    ray_worker_gpus: float
    ray_worker_resources: dict[str, float]
    ray_learner_cpus: float
    ray_learner_gpus: float
    ray_learner_timeout_s: float
    ray_chunk_games: int
    ray_max_restarts: int
    ray_learner_strategy: str
    games_per_step: int
    seed: int
    log_transcripts: int
    device: str
    generator: str
    vllm_gpu_memory_utilization: float

    @classmethod
    def from_config(cls, config: TrainConfig) -> RaySettings:
        return _pick(cls, config)
