"""Named starting points of a run (`--preset`): option values over `TrainConfig`'s defaults."""

from __future__ import annotations

from typing import Any

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
        "policy_average": "none",  # the paper ships the last iterate
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
        "keep_evaluated": False,  # a 4B policy is 8 GB in bf16: 25 evaluations would keep 200 GB
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
    "keep_evaluated": True,  # an evaluated checkpoint keeps only its adapter: tens of MB
    "lr": 1e-5,  # LoRA's best learning rate is about 10x full fine-tuning's (Schulman et al., "LoRA Without Regret")
    "vllm_gpu_memory_utilization": 0.6,
}
