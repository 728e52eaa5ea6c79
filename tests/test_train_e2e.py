"""End to end: the tiny default really learns Kuhn Poker by self-play (fixed seed, generous margins)."""

from __future__ import annotations

from helpers import E2E_KEY, run_e2e


def test_tiny_default_improves_against_random(spiral_cache, tmp_path, capsys):
    run_dir = tmp_path / "run"
    records = run_e2e(run_dir)
    first, last = records[0], records[-1]
    assert last[E2E_KEY + "win_rate"] >= first[E2E_KEY + "win_rate"] + 0.10, (first, last)
    assert last[E2E_KEY + "invalid_rate"] <= first[E2E_KEY + "invalid_rate"] - 0.05, (first, last)
    assert last["train/invalid_rate"] < records[1]["train/invalid_rate"]
    assert (run_dir / "curves.png").stat().st_size > 10_000
    assert (run_dir / "transcripts.jsonl").exists()
    assert "curves:" in capsys.readouterr().out
