"""Shared fixtures: tiny models built locally (no hub), once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def spiral_cache(tmp_path_factory) -> Path:
    """Where tiny models are cached: SPIRAL_CACHE if set (CI reuses builds), else a session folder."""
    path = Path(os.environ.get("SPIRAL_CACHE") or tmp_path_factory.mktemp("spiral-cache"))
    os.environ["SPIRAL_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def quick_model(spiral_cache) -> Path:
    """A tiny Qwen3 with a short warm-up (400 steps of 16 turns): for plumbing, not learning."""
    pytest.importorskip("torch")
    from spiral_train.models.tiny import TinySpec, tiny_model_path

    current = '{"history": "current"}'  # what the runs show by default (`TrainConfig.history`)
    spec = TinySpec(
        env_ids=("TicTacToe-v0", "KuhnPoker-v1"),
        env_kwargs=(("KuhnPoker-v1", current), ("TicTacToe-v0", current)),
        warmup_steps=400,
        warmup_batch=16,
    )
    return tiny_model_path(spec, log=lambda *_: None)


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster per test module; 4 logical CPUs so two workers and a learner (one CPU each) fit on
    2 real cores."""
    ray = pytest.importorskip("ray")
    from spiral_train.distributed.local_ray import init_local_ray

    init_local_ray(num_cpus=4)
    yield
    ray.shutdown()
