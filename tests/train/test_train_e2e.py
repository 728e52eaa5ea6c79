"""End to end: `spiral-train` runs the tiny default, evaluates its strategy, and writes what a researcher reads."""

from __future__ import annotations

import pytest
from helpers import run_e2e

from spiral_train.progress import progress_postfix

pytestmark = pytest.mark.learning


def test_tiny_default_runs_end_to_end_with_strategy_metrics(spiral_cache, tmp_path, capsys):
    run_dir = tmp_path / "run"
    records = run_e2e(run_dir)
    # on-policy: the first pass of each update sees ratio 1, so the sampler's logprobs are the learner's
    assert all(abs(r["approx_kl"]) < 1e-4 for r in records[1:]), [r["approx_kl"] for r in records[1:]]
    assert all(0.0 <= r["train/truncated_rate"] <= 1.0 for r in records[1:])
    for r in records[1:]:  # where each step went: the parts are timed apart, inside the step
        parts = [r[f"time/{part}_s"] for part in ("generation", "tokenize", "env", "update", "sync")]
        assert all(seconds >= 0.0 for seconds in parts), r
        assert r["time/generation_s"] > 0.0 and r["time/update_s"] > 0.0, r
        assert sum(parts) <= r["time/step_s"], r
    assert (run_dir / "curves.png").stat().st_size > 10_000
    assert (run_dir / "transcripts.jsonl").exists()
    assert "curves:" in capsys.readouterr().out
    # the progress bar's line for such a step (this run passes --no-progress, so it is built here)
    assert "time: gen " in progress_postfix(records[-2]) and " other " in progress_postfix(records[-2])
