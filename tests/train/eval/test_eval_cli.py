"""`spiral-eval games`: a run's checkpoints against each other, the scripted opponents and the exploiter."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from spiral_train.eval.cli import main


def test_spiral_eval_games_plays_two_checkpoints_of_a_run(quick_model, tmp_path, capsys):
    from helpers import small_config

    from spiral_train.trainer import Trainer

    run_dir = Trainer(small_config(quick_model, 2), tmp_path / "run").run()
    newer, older = run_dir / "checkpoints" / "step_000002", run_dir / "checkpoints" / "step_000001"
    out = tmp_path / "games.json"
    args = ["games", "--model", str(newer), "--vs", str(older), "--games", "8", "--probe-samples", "4"]
    args += ["--env-kwargs", '{"KuhnPoker-v1": {"num_rounds": 1}}', "--out", str(out)]
    assert main(args) == 0
    table = capsys.readouterr().out
    metrics = json.loads(out.read_text())["metrics"]
    for opponent in ("random", "strong", "exploiter", str(older)):
        base = f"eval/KuhnPoker-v1/{opponent}/"
        assert metrics[base + "games"] == 8
        rates = [metrics[base + r] for r in ("win_rate", "draw_rate", "loss_rate")]
        assert sum(rates) == pytest.approx(1.0)
        assert metrics[base + "win_rate_lo"] <= metrics[base + "win_rate"] <= metrics[base + "win_rate_hi"]
        assert f"| KuhnPoker-v1 | {opponent} | 8 |" in table
    assert metrics["eval/KuhnPoker-v1/strategy/nash_conv"] >= 0.0
    assert "KuhnPoker-v1/strategy/nash_conv" in table


def test_spiral_eval_games_names_a_bad_opponent(capsys):
    assert main(["games", "--model", "x", "--opponents", "randm"]) == 2
    assert "choose among random, strong, exploiter (models go in --vs)" in capsys.readouterr().err
