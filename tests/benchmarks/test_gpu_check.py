"""`benchmarks/gpu_check.py` passes its CPU dry run as a GPU machine here would run it: without pettingzoo,
gymnasium, vLLM or Ray, every section with its figures (or a recorded reason)."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
WITHOUT = ("pettingzoo", "gymnasium", "vllm", "ray")
"""What the GPU machines lack: each made unimportable in the dry run's process."""


def _number(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gpu-check") / "dry.json"
    runner = (
        "import runpy, sys\n"
        f"for name in {WITHOUT!r}: sys.modules[name] = None\n"
        f"sys.argv = ['gpu_check.py', '--dry-run', '--out', {str(out)!r}]\n"
        f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
    )
    done = subprocess.run([sys.executable, "-c", runner], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return json.loads(out.read_text())


def test_dry_run_imports_neither_the_games_nor_vllm_nor_ray(dry_run):
    assert dry_run["dry_run"] is True and dry_run["complete"] is True
    assert dry_run["imported_forbidden"] == []
    assert dry_run["imports"] == {"mode": "package", "games_packages_missing": ["pettingzoo", "gymnasium"]}
    assert set(dry_run["sections"]) == {"update_memory", "dlogp", "token_logprobs", "generation"}
    failed = {name: s.get("error") for name, s in dry_run["sections"].items() if not s["ok"]}
    assert not failed, failed


def test_update_memory_runs_the_learner_and_records_the_plan_or_why_not(dry_run):
    runs = dry_run["sections"]["update_memory"]["runs"]
    assert [(r["shape"], r["lora_rank"]) for r in runs] == [("Qwen3-0.6B", 0), ("Qwen3-4B", 0), ("Qwen3-4B", 4)]
    for run in runs:
        assert _number(run["update_s"]) and run["update_s"] > 0 and run["loss_finite"] is True
        assert run["peak_gib"] is None and "no CUDA allocator" in run["note"]  # CPU: a reason, not a number
        assert _number(run.get("plan_gib")) or run["plan"].startswith("plan unavailable: "), run


def test_dlogp_of_a_bf16_sampler_is_small_on_the_learners_positions(dry_run):
    section = dry_run["sections"]["dlogp"]
    for variant in ("random_init", "logits_x8"):
        for sampler in ("bf16_sampler", "hf_sampler_autocast"):
            record = section[variant][sampler]
            assert record["tokens"] == section["batch"] * section["new_tokens"]
            for against in ("vs_learner_autocast", "vs_learner_fp32"):
                stats = record[against]
                assert all(_number(v) for v in stats.values()), stats
                assert 0.0 <= stats["share_above_0.1"] <= 1.0
                # bf16 rounding of a tiny model: about 0.02 at most; a logprob of the wrong position is off by nats
                assert stats["max_abs"] < 0.5, (variant, sampler, against, stats)
    # on CPU autocast is off, so the learner's own sampling is its recomputation up to the KV cache's rounding
    assert section["random_init"]["hf_sampler_autocast"]["vs_learner_fp32"]["max_abs"] < 1e-3


def test_token_logprobs_and_generation_have_figures(dry_run):
    chunks = dry_run["sections"]["token_logprobs"]
    assert chunks["vocab"] == 151_936 and chunks["runs"]
    assert all(_number(r["seconds"]) and r["seconds"] > 0 for r in chunks["runs"])
    assert _number(chunks["full_log_softmax"]["seconds"])
    generation = dry_run["sections"]["generation"]
    assert len(generation["runs"]) == 4
    for run in generation["runs"]:
        assert "error" not in run, run
        assert run["tokens"] == generation["batch"] * generation["new_tokens"] and run["tokens_per_s"] > 0


def test_the_checks_learner_settings_are_the_paper_presets():
    from spiral_train.config import make_config
    from spiral_train.learner import LearnerSettings

    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    gpu_check = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = gpu_check  # its dataclasses look their module up
    try:
        spec.loader.exec_module(gpu_check)
    finally:
        del sys.modules["gpu_check"]
    config = make_config("paper-qwen3-4b")  # validation reads the config; it needs no GPU
    assert LearnerSettings.from_config(config) == LearnerSettings(**gpu_check.PRESET_LEARNER)
    assert config.gradient_checkpointing is True
