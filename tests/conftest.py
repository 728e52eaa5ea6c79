"""Shared fixtures: tiny models built locally (no hub), once per test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

QUICK_WARMUP = {"env_ids": ("TicTacToe-v0", "KuhnPoker-v1"), "warmup_steps": 400, "warmup_batch": 16}
"""The quick model's spec (with the runs' default history)."""
QUICK_VLLM = {
    "env_ids": ("TicTacToe-v0", "KuhnPoker-v1"),
    "warmup_steps": 40,
    "warmup_batch": 16,
    "num_heads": 2,
    "num_kv_heads": 1,
}
"""The quick vLLM model's spec: 2 heads of 32, as vLLM's CPU attention needs, and 40 warm-up steps (seconds)."""
BUILDS: list[tuple[str, str, float]] = []
"""(test, model key, seconds since the previous test ended) for each tiny model built during this test run."""
SEEN: set[str] = set()
"""The tiny models in the cache: there at the start of the run, or built since."""
LAST_TEST_END = [time.time()]


def pytest_configure(config: pytest.Config) -> None:
    """One model cache for the whole run, set before any test: every test and every process it starts builds a
    given tiny model at most once per run (SPIRAL_CACHE if set, as CI sets it, reuses builds across runs)."""
    if not os.environ.get("SPIRAL_CACHE"):
        os.environ["SPIRAL_CACHE"] = tempfile.mkdtemp(prefix="spiral-test-cache-")
        config.add_cleanup(lambda: shutil.rmtree(os.environ.pop("SPIRAL_CACHE"), ignore_errors=True))
    SEEN.update(_built())


def _built() -> set[str]:
    root = Path(os.environ["SPIRAL_CACHE"]) / "tiny"
    return {p.name for p in root.iterdir() if (p / "config.json").exists()} if root.is_dir() else set()


@pytest.fixture(autouse=True)
def _tiny_builds(request: pytest.FixtureRequest):
    """Record each tiny model built for a test (in the test or in the set-up of a fixture it uses, of any
    scope); outside the `learning` marker (the fast loop) only the two quick models may be built, so the fast
    loop never waits minutes for a warm-up."""
    yield
    new = _built() - SEEN
    SEEN.update(new)
    now = time.time()
    for key in sorted(new):
        BUILDS.append((request.node.nodeid, key, now - LAST_TEST_END[0]))
    LAST_TEST_END[0] = now
    if new and request.node.get_closest_marker("learning") is None:
        others = sorted(new - _quick_keys())
        if others:
            pytest.fail(
                f"{request.node.nodeid} built the tiny model(s) {others} outside the `learning` marker: use the "
                "`quick_model` or `quick_vllm_model` fixture, or mark the test `learning` (the fast loop builds "
                "the quick models only)"
            )


def pytest_terminal_summary(terminalreporter) -> None:
    """Which tiny models this run built, by which test, in how long (a build is most of a slow test's time)."""
    if BUILDS:
        terminalreporter.section("tiny models built in this run")
        for test, key, seconds in BUILDS:
            terminalreporter.write_line(f"{key}  {seconds:6.0f} s  {test}")


def _quick_keys() -> set[str]:
    from spiral_train.models.tiny import TinySpec

    return {_quick_spec(TinySpec).key(), _quick_vllm_spec(TinySpec).key()}


def _quick_spec(spec_class):
    current = '{"history": "current"}'  # what the runs show by default (`TrainConfig.history`)
    kwargs = (("KuhnPoker-v1", current), ("TicTacToe-v0", current))
    return spec_class(env_kwargs=kwargs, **QUICK_WARMUP)


def _quick_vllm_spec(spec_class):
    return spec_class(**QUICK_VLLM)


@pytest.fixture(scope="session")
def spiral_cache() -> Path:
    """Where tiny models are cached in this run (`pytest_configure` sets SPIRAL_CACHE)."""
    return Path(os.environ["SPIRAL_CACHE"])


@pytest.fixture(scope="session")
def quick_model(spiral_cache) -> Path:
    """A tiny Qwen3 with a short warm-up (400 steps of 16 turns): for plumbing, not learning."""
    pytest.importorskip("torch")
    from spiral_train.models.tiny import TinySpec, tiny_model_path

    return tiny_model_path(_quick_spec(TinySpec), log=lambda *_: None)


@pytest.fixture(scope="session")
def quick_vllm_model(spiral_cache) -> Path:
    """A tiny Qwen3 with 2 heads of 32 (head_dim 32), so that vLLM's CPU attention runs it, and 40 warm-up steps:
    for plumbing, not learning."""
    pytest.importorskip("torch")
    from spiral_train.models.tiny import TinySpec, tiny_model_path

    return tiny_model_path(_quick_vllm_spec(TinySpec), log=lambda *_: None)


@pytest.fixture(scope="session")
def default_run(spiral_cache, tmp_path_factory):
    """`default_run(seed)`: (its working folder, its run folder) after `spiral-train` with no arguments but the
    seed (seed 0: no arguments at all, as the README writes it), run once per seed in this test run."""
    runs: dict[int, tuple[Path, Path]] = {}

    def run(seed: int) -> tuple[Path, Path]:
        if seed not in runs:
            cwd = tmp_path_factory.mktemp(f"default-seed{seed}")
            command = [sys.executable, "-m", "spiral_train.cli"] + (["--seed", str(seed)] if seed else [])
            done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=3600)
            assert done.returncode == 0, done.stderr[-3000:]
            (run_dir,) = (cwd / "runs").iterdir()
            runs[seed] = (cwd, run_dir)
        return runs[seed]

    return run


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster per test module; 4 logical CPUs so two workers and a learner (one CPU each) fit on
    2 real cores."""
    ray = pytest.importorskip("ray")
    from spiral_train.distributed.local_ray import init_local_ray

    init_local_ray(num_cpus=4)
    yield
    ray.shutdown()
