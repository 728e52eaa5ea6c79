"""Settings the tests share: one small run, and the end-to-end run both generation backends must pass."""

from __future__ import annotations

from pathlib import Path

from spiral_train.config import TrainConfig, make_config


def small_config(model: Path, steps: int, **extra) -> TrainConfig:
    """A few seconds a step on CPU: one-round Kuhn Poker, 6 games a step, no evaluation."""
    return make_config(
        "tiny-cpu",
        {
            "model": str(model),
            "env_kwargs": {"KuhnPoker-v1": {"num_rounds": 1}},
            "steps": steps,
            "games_per_step": 6,
            "num_envs": 3,
            "eval_games": 0,
            "progress": False,
            "log_transcripts": 1,
            "save_every": 1,
            # resume tests stop a run of N steps and continue it as one of M: a decaying schedule would differ
            "lr_schedule": "constant",
            **extra,
        },
    )


E2E_ARGS = [
    "--steps", "16",
    "--games-per-step", "32",
    "--eval-every", "16",
    "--eval-opponents", "random",
    "--eval-games", "64",
    "--seed", "0",
    "--no-progress",
]  # fmt: skip
"""The end-to-end learning run of the tiny default (16 steps, seed 0), as `spiral-train` arguments."""
E2E_KEY = "eval/KuhnPoker-v1/random/"
"""Where the end-to-end run's evaluation against `RandomAgent` is logged."""


STRATEGY_KEY = "eval/KuhnPoker-v1/strategy/"
"""Where the end-to-end run's strategy metrics (NashConv of the measured first-hand policy) are logged."""


def run_e2e(run_dir: Path, *extra: str) -> list[dict]:
    """The end-to-end run, with `extra` flags; its metrics records, checked to span steps 0 to 16 and to hold,
    at both evaluations, the strategy metrics and the rates with intervals that every run must log.

    What it asserts holds on any machine and seed: a fixed-seed run's numbers differ between CPUs, so whether
    it *learns* is measured over seeds by `benchmarks/learning.py`, not asserted here.
    """
    from spiral_train.cli import main
    from spiral_train.metrics import read_metrics

    assert main([*E2E_ARGS, *extra, "--run-dir", str(run_dir)]) == 0
    records = read_metrics(run_dir)
    assert (records[0]["step"], records[-1]["step"]) == (0, 16)
    for record in (records[0], records[-1]):
        assert 0.0 <= record[STRATEGY_KEY + "nash_conv_lo"] <= record[STRATEGY_KEY + "nash_conv_hi"] <= 2.5
        assert 0.0 <= record[STRATEGY_KEY + "invalid_rate"] <= 1.0
        for rate in ("win_rate", "invalid_rate"):
            assert record[E2E_KEY + rate + "_lo"] <= record[E2E_KEY + rate] <= record[E2E_KEY + rate + "_hi"]
    return records


def perturb(model, seed: int) -> None:
    """Change v_proj, o_proj and the (tied) output head: Qwen3 normalises q and k, so scaling them is a no-op."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "v_proj" in name or "o_proj" in name or name in ("lm_head.weight", "model.embed_tokens.weight"):
                param.add_(0.3 * param.std() * torch.randn(param.shape, generator=g))
