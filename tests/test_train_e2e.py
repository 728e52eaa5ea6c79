"""End to end: the tiny default really learns Kuhn Poker by self-play (fixed seed, generous margins)."""

from __future__ import annotations

from helpers import E2E_ARGS

from spiral_train.cli import main
from spiral_train.metrics import read_metrics

KEY = "eval/KuhnPoker-v1/random/"


def test_tiny_default_improves_against_random(spiral_cache, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(
        [
            *E2E_ARGS,
            "--run-dir",
            str(run_dir),
        ]
    )
    assert code == 0
    records = read_metrics(run_dir)
    first, last = records[0], records[-1]
    assert (first["step"], last["step"]) == (0, 16)
    assert last[KEY + "win_rate"] >= first[KEY + "win_rate"] + 0.10, (first, last)
    assert last[KEY + "invalid_rate"] <= first[KEY + "invalid_rate"] - 0.05, (first, last)
    assert last["train/invalid_rate"] < records[1]["train/invalid_rate"]
    assert (run_dir / "curves.png").stat().st_size > 10_000
    assert (run_dir / "transcripts.jsonl").exists()
    assert "curves:" in capsys.readouterr().out
