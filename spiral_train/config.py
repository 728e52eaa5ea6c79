"""Every option of a training run, in one typed dataclass, with presets and validation.

A bad value must fail at start, naming the option and what it accepts, not an hour into a run.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import difflib
import importlib.util
import inspect
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml

import spiral_envs

RAE_MODES = ("ema", "batch", "none")
LOSS_AGGREGATIONS = ("token_mean", "seq_sum_const")
LR_SCHEDULES = ("constant", "linear", "cosine")
OPPONENTS = ("self", "random", "strong")
EVAL_OPPONENTS = ("random", "strong", "exploiter")
DEVICES = ("auto", "cpu", "cuda")
GENERATORS = ("hf", "vllm")
LORA_INSTALL_HINT = 'pip install "spiral-envs[lora]" (or: pip install peft)'


@dataclass
class TrainConfig:
    """A self-play run. Defaults are the `tiny-cpu` preset: a tiny local model on Kuhn Poker, on a laptop CPU."""

    # what to play
    env_ids: list[str] = field(default_factory=lambda: ["KuhnPoker-v1"])
    """Games to train on; with several, each new game draws its id by `env_weights`."""
    env_weights: list[float] | None = None
    """Relative weights of `env_ids` when a new game draws its id; None weighs them equally."""
    env_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Options per env id, passed to `spiral_envs.make`, e.g. {"KuhnPoker-v1": {"num_rounds": 1}}."""
    history: str | None = "current"
    """What each prompt shows of the past: "current" (the rules and the position: in Kuhn Poker the round, the
    chips, the card and this round's moves, all the match's equilibrium reads), "full" (every past move, the
    paper's choice) or None (each game's default). Passed to every game unless its `env_kwargs` name one."""
    opponent: str = "self"
    """"self" (both seats are the learner), "random", "strong", or a checkpoint folder (a frozen model)."""

    # model and prompts
    model: str | None = None
    """A Hugging Face model folder or id; None builds the tiny embedded model offline (cached)."""
    template: str = "qwen3"
    """How an observation becomes a prompt: "qwen3" (the paper's), "chat" (the tokenizer's template), "none"."""
    max_new_tokens: int = 8
    """Longest answer, in tokens; an answer that has not ended by then is cut off (see `truncated_is_invalid`)."""
    truncated_is_invalid: bool = True
    """An answer cut off at `max_new_tokens` commits to no move (an invalid answer), whatever it holds so far:
    otherwise a lenient parser hides a format that has stopped ending (measured: `\\boxed{[bet]}]}]}` until
    the token limit)."""
    temperature: float = 1.0
    """Sampling temperature for training games (the paper: 1.0)."""
    top_k: int = 0
    """Sample training games from the k most likely tokens only; 0 samples from all of them. Both backends;
    the learner's logprobs use the same truncated, renormalised distribution, so the first PPO ratio stays 1
    (evaluation has its own: `eval_top_k`)."""
    top_p: float = 1.0
    """Nucleus sampling of training games: only the smallest set of most likely tokens whose probability
    reaches top_p (after `top_k`); 1.0 samples from all. Applied like `top_k` (evaluation: `eval_top_p`)."""

    # collection
    games_per_step: int = 256
    """Games played per training step; all their turns make one update."""
    num_envs: int = 256
    """Games played at once; all their pending turns go to the model in one batched call."""
    generation_batch_size: int = 256
    """Most prompts one generation call holds (hf: a batch; vllm: max_num_seqs); more are split."""

    # advantage
    rae: str = "ema"
    """Role-conditioned Advantage Estimation: "ema" (the paper), "batch" (per-batch mean/std per game and
    role), or "none" (plain REINFORCE on the raw return)."""
    rae_decay: float = 0.95
    """EMA decay of the RAE baselines, one per (game, role): b <- decay * b + (1 - decay) * return."""
    state_baseline: bool = True
    """A turn whose exact prompt recurs in the batch (same game, role and opponent kind) takes as baseline the
    mean return of the other turns there, instead of its role's RAE baseline: a per-state baseline, so the
    answers at a state are told apart and the format they share is not pushed (`rae.state_baselines`)."""
    drop_zero_advantage: bool = False
    """Leave turns whose advantage is exactly 0 out of the update (they carry no policy gradient, only the KL
    term)."""

    # learner
    steps: int = 80
    """Training steps (each: play `games_per_step` games, estimate advantages, one update)."""
    lr: float = 2e-3
    """Peak learning rate of AdamW (the paper: 1e-6 for Qwen3-4B-Base; the tiny model needs 2e-3)."""
    lr_schedule: str = "linear"
    """"constant", "linear" (to 0 at the last step, after `warmup_steps`) or "cosine". Linear for the tiny model:
    self-play policy gradient in Kuhn Poker circles the equilibrium rather than settling (measured at a constant
    2e-3: NashConv 0.37 at step 40, 0.56 at step 60), and a decaying step size damps the circling."""
    warmup_steps: int = 5
    """Linear learning-rate warm-up: Adam's first steps move every weight by ~lr whatever its gradient, which
    measured here broke the tiny model's answer format at step 2 without warm-up."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    adam_betas: tuple[float, float] = (0.9, 0.95)
    """AdamW (beta1, beta2)."""
    num_epochs: int = 1
    """Passes over each step's turns (PPO epochs); with 1 the update is on-policy and the clip never binds."""
    micro_batch_size: int = 256
    """Turns per forward/backward pass; the gradient is the same for any size up to float rounding (it is
    accumulated over the batch). Larger is faster for the tiny model on a CPU (256: 20% less update time
    than 64, docs/learning.md)."""
    clip_eps: float = 0.2
    """PPO clip range of the ratio pi / pi_old, [1 - clip_eps, 1 + clip_eps]; pi_old is the learner's own
    logprob before the update, so the first pass's ratio is exactly 1 whatever the sampler's numerics."""
    tis_cap: float = 2.0
    """Truncated importance sampling: each token's loss is weighted by min(pi_old / pi_sampler, tis_cap), which
    corrects for a sampler whose numerics differ from the learner's (bf16 vLLM, async staleness); 0 turns the
    weight off. The mismatch is logged as mismatch/*."""
    loss_aggregation: str = "token_mean"
    """"token_mean" (the loss is the mean over all answer tokens of the step) or "seq_sum_const" (Dr. GRPO:
    summed per answer, divided by a constant, turns x max_new_tokens, so long answers are not down-weighted per
    token)."""
    max_grad_norm: float = 1.0
    """Gradient norm clip of each update."""
    kl_coef: float = 0.1
    """Weight of a per-token KL penalty (k3) towards the starting model; 0 turns it off (no reference model).
    On for the tiny model: without it, RL stopped the warm-up's habit of restating the card correctly (98% ->
    33% on one seed), its play went card-blind, and it settled on always bet / always call. 0.1 rather than
    0.05: NashConv at step 80 0.43/0.38/0.42 against 0.46/0.43/0.40 on seeds 0-2 (docs/learning.md)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, more time (for real models)."""
    offload_optimizer: bool = False
    """Keep AdamW's moments in CPU memory between updates (moved to the device for each update): frees 8 bytes
    a trainable parameter on the device while games are played, at the cost of two copies a step."""
    bf16: bool = False
    """bf16 autocast on CUDA (ignored on CPU). Off for the tiny model: measured on an H100, bf16 logits made
    its PPO ratios noisy enough to blow the policy up within two steps; on for real models (paper preset)."""

    # evaluation
    eval_every: int = 20
    """Evaluate every this many steps (and at step 0 and the last step)."""
    eval_games: int = 320
    """Games per (env, opponent); the model plays half of them in each seat, on fixed seeds. 320 so that
    the default run's rise in win rate against `strong` (about 9 points) clears its 95% interval (about 7)."""
    eval_env_ids: list[str] | None = None
    """Defaults to `env_ids`."""
    eval_opponents: list[str] = field(default_factory=lambda: ["random", "strong", "exploiter"])
    """"random", "strong" (the game's exact or scripted expert) and "exploiter" (Kuhn Poker: an exact best
    response to the policy the strategy metrics measured at that evaluation)."""
    eval_temperature: float = 1.0
    """Sampling temperature of evaluation games, probes and reasoning benchmarks; 0 is greedy."""
    eval_top_k: int = 0
    """`top_k` of evaluation games, probes and reasoning benchmarks; 0 samples from all tokens."""
    eval_top_p: float = 1.0
    """`top_p` of evaluation games, probes and reasoning benchmarks (the paper's code: 0.95, where its
    training samples with 1.0)."""
    eval_probe_samples: int = 64
    """Answers sampled per decision point for the strategy metrics (Kuhn Poker: the 12 states of the first
    hand; TicTacToe: `eval_probe_positions` fixed positions with an eighth as many each); 0 turns them off."""
    eval_probe_positions: int = 120
    """TicTacToe positions probed for the optimal-move rate (a real model's answers cost far more than the tiny
    model's: its preset probes fewer)."""
    eval_reasoning: list[str] = field(default_factory=list)
    """Reasoning benchmarks graded at every evaluation, the paper's transfer curve: files, names looked up in
    `eval_reasoning_dir`, or gym:NAME[:COUNT] (generated, offline); logs eval/reasoning/<name>/accuracy with its
    95% interval (`spiral-eval reasoning` runs the same evaluation outside training)."""
    eval_reasoning_dir: str | None = None
    """Where `eval_reasoning` names are looked up (math500 -> DIR/math500.jsonl, ...)."""
    eval_reasoning_problems: int = 50
    """The first this many problems of each benchmark, the same ones at every evaluation."""
    eval_reasoning_samples: int = 1
    """Answers per problem (avg@n), at `eval_temperature`."""
    eval_reasoning_max_new_tokens: int = 1024
    """Longest answer in tokens; a longer one is cut off (and, without its box, wrong)."""

    # bookkeeping
    run_dir: str | None = None
    """Default: a new folder under runs/."""
    save_every: int = 5
    """Write a checkpoint every this many steps (and at the end); a run resumes from its last one."""
    keep_checkpoints: int = 2
    """Checkpoints kept in run_dir/checkpoints/; older ones are deleted."""
    log_transcripts: int = 2
    """Game transcripts written per step to transcripts.jsonl."""
    tensorboard: bool = False
    """Also log metrics to TensorBoard (run_dir/tensorboard/; needs tensorboard)."""
    wandb: bool = False
    """Also log metrics to Weights & Biases (needs wandb and a login)."""
    wandb_project: str = "spiral"
    """The Weights & Biases project."""
    seed: int = 0
    """Seeds everything the run draws: deals, sampling, the order of micro-batches."""
    device: str = "auto"
    """"auto" (CUDA when a GPU is visible, else CPU), "cpu" or "cuda"."""
    progress: bool = True
    """Show a progress bar on the terminal."""

    # opponent pools (fictitious self-play; spiral_train/pool.py)
    pool_every: int = 0
    """Every `pool_every` steps (from step 0) a snapshot of the policy joins the opponent pool; 0 turns pools off."""
    pool_share: float = 0.5
    """Share of each step's games, round(pool_share * games_per_step), played against one snapshot drawn
    uniformly from the pool; the learner takes alternate seats in them and only its turns are trained."""
    pool_size: int = 4
    """Most snapshots kept (each one is a copy of the weights on disk under run_dir/pool/); the oldest goes."""

    # distributed (Ray): rollout workers and a learner group as Ray actors (spiral_train/distributed/)
    ray_workers: int = 0
    """Rollout workers, each a Ray actor with its own model copy; 0 runs everything in this process."""
    ray_learners: int = 1
    """Learner ranks (Ray actors, data parallel under torch.distributed: gloo on CPU, nccl on CUDA)."""
    ray_address: str | None = None
    """A Ray cluster to join ("auto", "ray://host:10001"); None starts a local one."""
    async_mode: bool = False
    """Workers keep playing while the learner updates; samples are at most `max_staleness` updates old."""
    max_staleness: int = 1
    """In `async_mode`, the most updates a game's weights may lag the learner's; older games are played again."""
    ray_worker_cpus: float = 1.0
    """CPUs Ray reserves for each rollout worker."""
    ray_worker_gpus: float = 0.0
    """GPUs (or a share of one, at most 1) Ray reserves for each rollout worker; > 0 when the run uses CUDA
    (docs/scaling.md: "GPUs on Ray")."""
    ray_worker_resources: dict[str, float] = field(default_factory=dict)
    """Custom Ray resources each rollout worker asks for, e.g. {"rollout_node": 1} to place the workers on
    the nodes started with `ray start --resources '{"rollout_node": 8}'`; empty: any node."""
    ray_learner_cpus: float = 1.0
    """CPUs Ray reserves for each learner rank."""
    ray_learner_gpus: float = 0.0
    """GPUs Ray reserves for each learner rank: a whole number, >= 1 when the run uses CUDA (one device per
    NCCL rank)."""
    ray_learner_timeout_s: float = 1800.0
    """Seconds a learner rank waits in a collective (gloo or nccl) before it fails: the bound on how long the
    other ranks can wait for one that died (the driver stops them at once when it sees the death)."""
    ray_chunk_games: int = 0
    """Games per call to a worker (each chunk samples from its own seed, so in sync mode a run's results do not
    depend on how many workers play the chunks); 0: games_per_step / ray_workers, one chunk per worker."""
    ray_max_restarts: int = 3
    """Times Ray restarts a dead rollout worker (-1: without limit); its games are played again."""
    ray_learner_strategy: str = "ddp"
    """How `ray_learners` ranks share the update: "ddp", each holds the whole model and Adam state and the
    gradients are summed once a step; "fsdp", torch FSDP2 (ZeRO-3 style) shards weights, gradients and Adam
    state over the ranks, for a model that one device cannot train."""

    # generation backend (vLLM)
    generator: str = "hf"
    """"hf" (transformers, samples from the learner's own weights) or "vllm" (a vLLM engine in this process,
    sent the learner's weights after every update; with ray_workers, one engine inside each rollout worker,
    sent the weights with each new version; `pip install vllm` on a GPU, see README for CPU). With no
    `model`, "vllm" builds the tiny model with 2 heads of 32 (head_dim 32: vLLM's CPU attention needs >= 32)."""
    vllm_gpu_memory_utilization: float = 0.3
    """Share of the GPU vLLM may take (weights and KV cache); the learner shares the GPU. Ignored on CPU."""
    vllm_kv_cache_mb: int | None = None
    """vLLM's KV cache in MiB; None: 256 on CPU, and on a GPU what vllm_gpu_memory_utilization leaves."""
    vllm_max_model_len: int | None = None
    """Longest prompt + answer vLLM accepts, in tokens; None: the model's own limit."""

    # LoRA (spiral_train/lora.py): train low-rank adapters only, the base model frozen
    lora_rank: int = 0
    """Rank of the LoRA adapters (needs peft); 0 fine-tunes every weight."""
    lora_alpha: float = 32.0
    """Adapter scale is lora_alpha / lora_rank: a fixed alpha keeps the best learning rate about the same
    across ranks (LoRA's usual 1/r parametrisation)."""
    lora_dropout: float = 0.0
    """Dropout on the adapter input while learning. Keep 0: the sampler runs without dropout, so any dropout
    makes the learner's logprobs differ from the behaviour logprobs and the first PPO ratio is no longer 1."""
    lora_target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    """peft target_modules: ["all-linear"] (every attention and MLP projection, not the output head) or
    module names, e.g. [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]."""

    # memory plan (spiral_train/plan/; `spiral-train plan` prints it)
    memory_check: bool = True
    """Refuse at start a run whose memory plan does not fit its devices, with the table and options that fit."""
    devices: str | None = None
    """Devices to plan for: 8x80GB, 1x80GB, 2x24GiB, cpu:24GB; None: this machine's."""
    plan_prompt_tokens: int | None = None
    """Longest prompt the plan assumes, in tokens; None: estimated from random games (characters / 3)."""

    def game_kwargs(self) -> dict[str, dict[str, Any]]:
        """The options each game of the run (training and evaluation) is made with: `env_kwargs` over `history`."""
        ids = dict.fromkeys([*self.env_ids, *(self.eval_env_ids or [])])
        base = {} if self.history is None else {"history": self.history}
        return {env_id: {**base, **self.env_kwargs.get(env_id, {})} for env_id in ids}

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise `ConfigError` naming the first bad option and what it accepts. Runs once, when the config is
        made (`dataclasses.replace` makes a new one, so it is checked too); `make_config` and the trainer
        rely on it."""
        _choice("rae", self.rae, RAE_MODES)
        if self.state_baseline and self.rae == "batch":
            raise ConfigError('state_baseline=True needs rae="ema" or "none": "batch" rescales each role by its std')
        _choice("loss_aggregation", self.loss_aggregation, LOSS_AGGREGATIONS)
        _choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _choice("template", self.template, spiral_envs.TEMPLATE_NAMES)
        _choice("device", self.device, DEVICES)
        _choice("generator", self.generator, GENERATORS)
        if self.history is not None:
            _choice("history", self.history, spiral_envs.HISTORY_MODES)
        if not 0.0 < self.vllm_gpu_memory_utilization <= 1.0:
            raise ConfigError(f"vllm_gpu_memory_utilization={self.vllm_gpu_memory_utilization} must be in (0, 1]")
        for name in ("vllm_kv_cache_mb", "vllm_max_model_len"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        for name in (
            "games_per_step",
            "num_envs",
            "steps",
            "num_epochs",
            "micro_batch_size",
            "max_new_tokens",
            "eval_every",
            "save_every",
            "keep_checkpoints",
            "generation_batch_size",
            "eval_probe_positions",
        ):
            _positive_int(name, getattr(self, name))
        for name in ("eval_games", "warmup_steps", "log_transcripts", "top_k", "eval_top_k", "eval_probe_samples"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 0")
        for name in ("top_p", "eval_top_p"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ConfigError(f"{name}={getattr(self, name)} must be in (0, 1] (1.0 turns nucleus sampling off)")
        if not 0.0 <= self.rae_decay < 1.0:
            raise ConfigError(f"rae_decay={self.rae_decay} must be in [0, 1) (the paper uses 0.95)")
        if self.lr <= 0:
            raise ConfigError(f"lr={self.lr} must be > 0 (the paper uses 1e-6 for Qwen3-4B-Base)")
        if self.temperature <= 0:
            raise ConfigError(f"temperature={self.temperature} must be > 0 for sampling (the paper uses 1.0)")
        for name in ("eval_reasoning_problems", "eval_reasoning_samples", "eval_reasoning_max_new_tokens"):
            _positive_int(name, getattr(self, name))
        if self.eval_reasoning and importlib.util.find_spec("math_verify") is None:
            raise ConfigError(f'eval_reasoning={self.eval_reasoning} needs math-verify: pip install -e ".[eval]"')
        if self.eval_temperature < 0:
            raise ConfigError(f"eval_temperature={self.eval_temperature} must be >= 0 (0 is greedy)")
        if self.clip_eps <= 0:
            raise ConfigError(f"clip_eps={self.clip_eps} must be > 0")
        if not (self.tis_cap == 0 or self.tis_cap >= 1):
            raise ConfigError(f"tis_cap={self.tis_cap} must be >= 1, or 0 to turn truncated importance sampling off")
        if self.max_grad_norm <= 0:
            raise ConfigError(f"max_grad_norm={self.max_grad_norm} must be > 0")
        if self.kl_coef < 0:
            raise ConfigError(f"kl_coef={self.kl_coef} must be >= 0 (0 turns the KL term off)")
        if self.model is not None and not Path(self.model).expanduser().is_dir() and not _HUB_ID.fullmatch(self.model):
            raise ConfigError(
                f"model={self.model!r} is not a folder here, nor a Hugging Face id such as 'Qwen/Qwen3-4B-Base': "
                "give a model folder (config.json and weights) or a run's checkpoint, or no model for the tiny one"
            )
        if self.model is not None and Path(self.model).expanduser().is_dir():
            folder = Path(self.model).expanduser()
            if not any((f / name).exists() for f in (folder, folder / "model") for name in _MODEL_FILES):
                raise ConfigError(
                    f"model={self.model!r} holds no model (no config.json, nor adapter_config.json of a LoRA "
                    "checkpoint, there or in its model/ folder)"
                )
        if not self.env_ids:
            raise ConfigError("env_ids is empty; name at least one game, e.g. KuhnPoker-v1")
        for env_id in [*self.env_ids, *(self.eval_env_ids or [])]:
            try:
                spiral_envs.spec(env_id)
            except spiral_envs.UnknownEnvError as err:
                raise ConfigError(str(err)) from None
        weights = self.env_weights
        if weights is not None and (len(weights) != len(self.env_ids) or min(weights) < 0 or sum(weights) <= 0):
            raise ConfigError(f"env_weights={weights} must give one weight >= 0 per env id {self.env_ids}, not all 0")
        if self.opponent not in OPPONENTS and not Path(self.opponent).is_dir():
            raise ConfigError(
                f"opponent={self.opponent!r} must be one of {list(OPPONENTS)} or an existing checkpoint folder"
            )
        for kind in self.eval_opponents:
            _choice("eval_opponents", kind, EVAL_OPPONENTS)
        for key in self.env_kwargs:
            if key not in self.env_ids and key not in (self.eval_env_ids or []):
                raise ConfigError(f"env_kwargs names {key!r}, which is not in env_ids {self.env_ids} or eval_env_ids")
        for env_id, kwargs in self.game_kwargs().items():  # each game built once: a bad option fails here, named
            try:
                spiral_envs.make(env_id, **kwargs)
            except (TypeError, ValueError, RuntimeError) as err:  # RuntimeError: TextArena cannot build it here
                raise ConfigError(f"{env_id} with options {kwargs}: {err}") from None
        _validate_pool(self)
        self._validate_ray()
        self._validate_lora()
        self._validate_plan()

    def _validate_ray(self) -> None:
        for name in ("ray_workers", "max_staleness", "ray_chunk_games"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name}={value!r} must be an integer >= 0")
        _positive_int("ray_learners", self.ray_learners)
        if self.ray_max_restarts < -1:
            raise ConfigError(f"ray_max_restarts={self.ray_max_restarts} must be >= 0, or -1 for no limit")
        for name in ("ray_worker_cpus", "ray_learner_cpus", "ray_worker_gpus", "ray_learner_gpus"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 0")
        if self.ray_learner_cpus == 0 and self.ray_learner_gpus == 0:
            raise ConfigError(
                "ray_learner_cpus=0 and ray_learner_gpus=0: a learner rank's placement bundle must hold something; "
                "use --ray-learner-cpus 1"
            )
        if self.ray_learner_timeout_s <= 0:
            raise ConfigError(f"ray_learner_timeout_s={self.ray_learner_timeout_s} must be > 0 (seconds)")
        problem = self.ray_gpu_problem(uses_cuda=self.device == "cuda") if self.ray_workers > 0 else None
        if problem is not None:
            raise ConfigError(problem)
        for name, amount in self.ray_worker_resources.items():
            if name in ("CPU", "GPU") or isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
                raise ConfigError(
                    f"ray_worker_resources={self.ray_worker_resources!r}: each entry must be a custom resource "
                    "name and an amount >= 0 (CPUs and GPUs are ray_worker_cpus and ray_worker_gpus)"
                )
        _choice("ray_learner_strategy", self.ray_learner_strategy, ("ddp", "fsdp"))
        if self.ray_workers > 0 and self.ray_learner_strategy == "fsdp" and self.ray_learners < 2:
            raise ConfigError(
                f"ray_learner_strategy='fsdp' with ray_learners={self.ray_learners}: sharding needs 2 ranks or more; "
                "raise ray_learners, or use ray_learner_strategy: ddp"
            )
        if self.ray_workers == 0 and (self.async_mode or self.ray_learners > 1 or self.ray_address):
            raise ConfigError(
                "async_mode, ray_learners > 1 and ray_address need Ray rollout workers: set ray_workers >= 1"
            )
        if self.ray_workers > 0 and importlib.util.find_spec("ray") is None:
            raise ConfigError(f'ray_workers={self.ray_workers} needs Ray: pip install -e ".[ray]" (or ray_workers=0)')

    def _validate_plan(self) -> None:
        if self.plan_prompt_tokens is not None:
            _positive_int("plan_prompt_tokens", self.plan_prompt_tokens)
        if self.devices is not None:
            from spiral_train.plan.devices import DeviceError, parse_devices

            try:
                parse_devices(self.devices)
            except DeviceError as err:
                raise ConfigError(str(err)) from None

    def ray_gpu_problem(self, uses_cuda: bool) -> str | None:
        """What is wrong with the GPUs the Ray actors ask for, in one line naming the option and the fix (None:
        nothing). `uses_cuda`: the actors will run on CUDA (see `distributed.driver.run_uses_cuda`).

        Ray sets CUDA_VISIBLE_DEVICES only for an actor that asks for GPUs; one that asks for none sees every
        GPU of its node and uses cuda:0, so on CUDA every actor must ask. A learner rank gets a whole GPU
        (NCCL refuses two ranks on one device); a rollout worker any share up to one (it uses one device), and
        a vLLM engine in it may take no more of the GPU's memory than that share.
        """
        learner, worker = self.ray_learner_gpus, self.ray_worker_gpus
        if learner != int(learner):
            return (
                f"ray_learner_gpus={learner:g}: a learner rank needs a whole GPU (two NCCL ranks cannot share "
                "one); use --ray-learner-gpus 1"
            )
        if worker > 1:
            return f"ray_worker_gpus={worker:g}: a rollout worker uses one device; use --ray-worker-gpus 1 or less"
        if self.device == "cpu" and self.ray_workers > 0 and (learner > 0 or worker > 0):
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
        if self.generator == "vllm" and self.vllm_gpu_memory_utilization > worker:
            return (
                f"vllm_gpu_memory_utilization={self.vllm_gpu_memory_utilization:g} with ray_worker_gpus={worker:g}: "
                f"each worker's engine would take more of a GPU than its share, and workers sharing a GPU would "
                f"not fit; use --vllm-gpu-memory-utilization {worker:g} or less (or more --ray-worker-gpus)"
            )
        return None

    def _validate_lora(self) -> None:
        if isinstance(self.lora_rank, bool) or not isinstance(self.lora_rank, int) or self.lora_rank < 0:
            raise ConfigError(f"lora_rank={self.lora_rank!r} must be an integer >= 0 (0 fine-tunes every weight)")
        if self.lora_alpha <= 0:
            raise ConfigError(f"lora_alpha={self.lora_alpha} must be > 0 (the adapter scale is lora_alpha/lora_rank)")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError(f"lora_dropout={self.lora_dropout} must be in [0, 1) (0 keeps updates on-policy)")
        if not self.lora_target_modules:
            raise ConfigError("lora_target_modules is empty; use [all-linear] or module names such as q_proj")
        if self.lora_rank > 0 and importlib.util.find_spec("peft") is None:
            raise ConfigError(f"lora_rank={self.lora_rank} needs the peft package: {LORA_INSTALL_HINT}")


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
"""What a Hugging Face model id looks like ("Qwen/Qwen3-4B-Base"): a `model` that is neither this nor a folder
here is a mistyped path."""


_MODEL_FILES = ("config.json", "adapter_config.json")


class ConfigError(ValueError):
    """A bad option value; the message names the option and the allowed values."""


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not allowed; choose one of {list(allowed)}")


def _validate_pool(c: TrainConfig) -> None:
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


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value!r} must be a positive integer")


PRESETS: dict[str, dict[str, Any]] = {
    "tiny-cpu": {},
    "paper-qwen3-4b": {
        # The SPIRAL paper's Kuhn Poker run as its code runs it (spiral-rl/spiral run.sh and train_spiral.py,
        # on oat's defaults); the deliberate differences are listed in docs/training.md.
        "model": "Qwen/Qwen3-4B-Base",
        "template": "qwen3",
        "env_ids": ["KuhnPoker-v1"],
        "history": "full",  # its LLM observation wrapper: every past message
        "env_kwargs": {"TicTacToe-v0": {"history": "current"}},  # evaluated without that wrapper: the board
        "max_new_tokens": 4096,  # generate_max_length
        "temperature": 1.0,
        "top_p": 1.0,
        "games_per_step": 128,  # rollout_batch_size = train_batch_size
        "num_envs": 128,
        "generation_batch_size": 128,
        "steps": 400,  # max_train 51200 / 128
        "state_baseline": False,  # RAE alone
        "drop_zero_advantage": True,  # filter_zero_adv
        "lr": 1e-6,
        "lr_schedule": "constant",
        "warmup_steps": 0,
        "adam_betas": (0.9, 0.95),
        "num_epochs": 2,  # num_ppo_epochs
        "micro_batch_size": 4,  # the gradient does not depend on it
        "loss_aggregation": "seq_sum_const",  # oat's default critic_type "drgrpo": per-answer sums / 4096
        "clip_eps": 0.2,
        "max_grad_norm": 1.0,
        "kl_coef": 0.0,  # beta 0
        "gradient_checkpointing": True,
        "bf16": True,
        "generator": "vllm",
        # one node of eight 80-GB GPUs, the layout `spiral-train plan` and the costs pick (docs/scaling.md): 4
        # rollout workers, each with a vLLM engine on its own GPU, and 4 FSDP learner ranks sharing the fp32
        # weights, gradients and AdamW state (64 GB for 4B; 40 GB a rank at the peak, 69 GB a worker)
        "ray_workers": 4,
        "ray_worker_gpus": 1.0,
        "ray_learners": 4,
        "ray_learner_gpus": 1.0,
        "ray_learner_strategy": "fsdp",
        "vllm_gpu_memory_utilization": 0.85,  # a worker's engine has its GPU to itself (oat: 0.45 beside a learner)
        "vllm_max_model_len": 12800,
        "eval_every": 16,
        "eval_games": 64,
        # strategy probes of a 4B model: 12 Kuhn Poker states x 16 answers, 32 TicTacToe positions x 2 (the tiny
        # default: 768 and 960), each answer up to max_new_tokens
        "eval_probe_samples": 16,
        "eval_probe_positions": 32,
        "eval_env_ids": ["TicTacToe-v0", "KuhnPoker-v1"],
        "eval_temperature": 0.6,
        "eval_top_p": 0.95,
        "eval_reasoning_max_new_tokens": 4096,  # eval_generate_max_length
        "save_every": 16,
        "device": "cuda",
    },
}
PRESETS["paper-qwen3-4b-lora-1gpu"] = {
    # The paper's run on ONE 80-GB GPU: LoRA adapters on the frozen base (fp32 as loaded, 16 GB), one process, the
    # vLLM engine asleep during each update; the plan: 65 GB at generation, 36 GB at the update (docs/scaling.md)
    **PRESETS["paper-qwen3-4b"],
    "ray_workers": 0,
    "ray_worker_gpus": 0.0,
    "ray_learners": 1,
    "ray_learner_gpus": 0.0,
    "ray_learner_strategy": "ddp",
    "lora_rank": 16,
    "lr": 1e-5,  # LoRA's best learning rate is about 10x full fine-tuning's (Schulman et al., "LoRA Without Regret")
    "vllm_gpu_memory_utilization": 0.6,
}


def option_groups() -> list[tuple[str, list[tuple[str, str]]]]:
    """`TrainConfig`'s options as (heading, [(field name, docstring)]) in source order: a heading is a
    `# comment` line in the class body, a field's help is the string under it (one source for `--help`)."""
    source = textwrap.dedent(inspect.getsource(TrainConfig))
    lines = source.splitlines()
    body = ast.parse(source).body[0].body
    groups: list[tuple[str, list[tuple[str, str]]]] = []
    for node, after in zip(body, [*body[1:], None]):
        if not isinstance(node, ast.AnnAssign):
            continue
        above = lines[node.lineno - 2].strip()
        if above.startswith("# ") or not groups:
            groups.append((above[2:] if above.startswith("# ") else "options", []))
        doc = ""
        if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
            doc = " ".join(after.value.value.split())
        groups[-1][1].append((node.target.id, doc))
    return groups


def make_config(preset: str = "tiny-cpu", overrides: dict[str, Any] | None = None) -> TrainConfig:
    """A preset with overrides applied and checked; an unknown option name fails with a suggestion."""
    if preset not in PRESETS:
        raise ConfigError(f"preset={preset!r} is unknown; choose one of {list(PRESETS)}")
    values = {**PRESETS[preset], **(overrides or {})}
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    for key in values:
        if key not in names:
            hint = difflib.get_close_matches(key, names, n=1)
            raise ConfigError(f"unknown option {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    types = get_type_hints(TrainConfig)
    values = {k: coerce(k, v, types[k]) for k, v in values.items()}
    return TrainConfig(**values)


def load_yaml(path: str | Path) -> dict[str, Any]:
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of option: value, got {type(data).__name__}")
    return data


def coerce(name: str, value: Any, annotation: Any) -> Any:
    """Check (and gently convert: YAML lists to tuples, ints to floats) a value against its field's type."""
    origin, args = get_origin(annotation), get_args(annotation)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"{name} may not be null")
    if origin is Literal:
        return value
    if args and type(None) in args:  # Optional[X]
        inner = [a for a in args if a is not type(None)]
        return coerce(name, value, inner[0])
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}={value!r} must be true or false")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}={value!r} must be an integer")
        return value
    if annotation is float:
        if isinstance(value, str):  # YAML reads 1e-6 (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}={value!r} must be a number")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}={value!r} must be a string")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}={value!r} must be a list")
        return [coerce(name, v, args[0]) for v in value]
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{name}={value!r} must be a list of {len(args)} values")
        return tuple(coerce(name, v, a) for v, a in zip(value, args))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name}={value!r} must be a mapping")
        return dict(value)
    return value


def to_dict(config: TrainConfig) -> dict[str, Any]:
    data = dataclasses.asdict(config)
    data["adam_betas"] = list(config.adam_betas)
    return data
