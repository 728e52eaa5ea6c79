"""`TrainConfig`: every option of a training run, one typed field each, its docstring the contract `--help` prints.

The schema only: making a config checks its values (`values.check_values`, pure and cheap, so
`dataclasses.replace` stays cheap anywhere); what needs this machine (envs, paths, extras) is checked once per
run by `make_config` (`run_checks.check_run`). Measurements behind the defaults are in docs/training.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RAE_MODES = ("ema", "batch", "none")
LOSS_AGGREGATIONS = ("token_mean", "seq_sum_const")
LR_SCHEDULES = ("constant", "linear", "cosine")
OPPONENTS = ("self", "random", "strong")
EVAL_OPPONENTS = ("random", "strong", "exploiter")
DEVICES = ("auto", "cpu", "cuda")
GENERATORS = ("hf", "vllm")
LEARNER_STRATEGIES = ("ddp", "fsdp")
LORA_INSTALL_HINT = 'pip install "spiral-envs[lora]" (or: pip install peft)'


class ConfigError(ValueError):
    """A bad option value; the message names the option and the allowed values."""


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
        from spiral_train.config.values import check_values

        check_values(self)

    def ray_gpu_problem(self, uses_cuda: bool) -> str | None:
        """What is wrong with the GPUs the Ray actors ask for (`values.ray_gpu_problem`); None: nothing."""
        from spiral_train.config.values import ray_gpu_problem

        return ray_gpu_problem(self, uses_cuda)
