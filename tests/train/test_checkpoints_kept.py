"""What a run keeps: the newest checkpoints whole (resume points) and, past them, the policy of every evaluation
(`keep_evaluated`), so that `spiral-eval games --vs` and `population` can compare a run's stages; and a run with
evaluation off (`eval_every 0`) for a smoke test."""

from __future__ import annotations

import pytest
from helpers import small_config

from spiral_train.checkpoint import COMPLETE_MARK, LAST_ITERATE, POLICY_ONLY_MARK, STATE_FILE, latest_checkpoint
from spiral_train.eval.cli import main as spiral_eval
from spiral_train.metrics import read_metrics
from spiral_train.trainer import Trainer

pytestmark = pytest.mark.learning

PROBES = {"eval_probe_samples": 2, "eval_opponents": ["random"], "eval_games": 2}
"""The smallest evaluation that still plays and probes."""


def kept(run_dir) -> dict[int, set[str]]:
    """Step -> the names in its checkpoint folder."""
    folders = sorted((run_dir / "checkpoints").glob("step_*"))
    return {int(f.name[5:]): {p.name for p in f.iterdir()} for f in folders}


def test_every_evaluated_policy_outlives_pruning_and_only_whole_checkpoints_resume(quick_model, tmp_path, capsys):
    run_dir = tmp_path / "run"
    config = small_config(quick_model, 6, eval_every=2, save_every=5, keep_checkpoints=1, **PROBES)
    Trainer(config, run_dir, log=lambda *_: None).run()
    folders = kept(run_dir)
    assert sorted(folders) == [2, 4, 6]  # evaluations at 2, 4, 6; step 5 (a save, no evaluation) pruned
    for step in (2, 4):
        assert "model" in folders[step] and POLICY_ONLY_MARK in folders[step]
        assert not folders[step] & {COMPLETE_MARK, STATE_FILE, LAST_ITERATE}, folders[step]
        model = run_dir / "checkpoints" / f"step_{step:06d}" / "model"
        assert (model / "config.json").exists() and (model / "tokenizer.json").exists()
        assert (model / "model.safetensors").stat().st_size > 100_000
    assert {COMPLETE_MARK, STATE_FILE, "model"} <= folders[6]
    assert latest_checkpoint(run_dir) == run_dir / "checkpoints" / "step_000006"
    # the README's comparison of two stages of a run, on the kept policies
    out = tmp_path / "games.json"
    checkpoints = run_dir / "checkpoints"
    argv = ["games", "--model", str(checkpoints / "step_000006"), "--vs", str(checkpoints / "step_000002")]
    argv += ["--env-kwargs", '{"KuhnPoker-v1": {"num_rounds": 1}}', "--games", "2", "--probe-samples", "1"]
    assert spiral_eval([*argv, "--opponents", "random", "--out", str(out), "--device", "cpu"]) == 0
    assert out.exists()


def test_without_keep_evaluated_only_the_newest_checkpoints_stay(quick_model, tmp_path):
    run_dir = tmp_path / "run"
    config = small_config(quick_model, 4, eval_every=2, save_every=5, keep_checkpoints=1, keep_evaluated=False)
    Trainer(config, run_dir, log=lambda *_: None).run()
    assert sorted(kept(run_dir)) == [4]  # a save at the end only: evaluations no longer add checkpoints


def test_eval_every_0_turns_evaluation_off(quick_model, tmp_path):
    lines = []
    run_dir = tmp_path / "run"
    Trainer(small_config(quick_model, 2, eval_every=0, **PROBES), run_dir, log=lines.append).run()
    records = read_metrics(run_dir)
    assert [r["step"] for r in records] == [1, 2]  # no step-0 evaluation
    assert not [k for r in records for k in r if k.startswith(("eval/", "last_iterate/"))]
    assert any("evaluation off (eval_every 0)" in line for line in lines)
    assert sorted(kept(run_dir)) == [1, 2]  # small_config saves every step; none is an evaluated one
