"""`spiral-eval population`: Elo ratings of a run's checkpoints and anchors, and the rating fit itself."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from spiral_train.eval.cli import main


def test_elo_ratings_recover_known_strengths():
    from spiral_train.eval.population import PairResult, elo_ratings

    true = {"a": 0.0, "b": 200.0, "c": 400.0}

    def expected(i: str, j: str) -> float:
        return 1.0 / (1.0 + 10 ** ((true[j] - true[i]) / 400))

    results = [PairResult(i, j, 10_000, 10_000 * expected(i, j), 0) for i, j in (("a", "b"), ("a", "c"), ("b", "c"))]
    ratings = elo_ratings(list(true), results)
    for name, value in true.items():
        assert ratings[name][0] == pytest.approx(value, abs=1.0)
    assert ratings["a"] == (0.0, 0.0) and 0.0 < ratings["b"][1] < 10.0  # anchored; 10,000 games: small errors
    even = elo_ratings(["x", "y"], [PairResult("x", "y", 100, 50.0, 0)])
    assert even["y"][0] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="two members or more"):
        elo_ratings(["x"], [])


def test_spiral_eval_population_rates_a_runs_checkpoints(quick_model, tmp_path, capsys, monkeypatch):
    """... into the run (RUN/eval/population) when no --out is given, not the working directory."""
    from helpers import small_config

    from spiral_train.trainer import Trainer

    run_dir = Trainer(small_config(quick_model, 2), tmp_path / "run").run()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    args = ["population", "--run", str(run_dir), "--anchors", "random", "--games", "6", "--no-progress"]
    args += ["--env-kwargs", '{"KuhnPoker-v1": {"num_rounds": 1}}']
    assert main(args) == 0
    out = run_dir / "eval" / "population"
    assert not any(elsewhere.iterdir())
    data = json.loads((out / "ratings.json").read_text())
    assert set(data["ratings"]) == {"step 1", "step 2", "random"}
    assert data["ratings"]["step 1"]["elo"] == 0.0 and data["ratings"]["step 2"]["step"] == 2
    assert sorted((p["first"], p["second"]) for p in data["pairs"]) == [
        ("step 1", "random"),
        ("step 1", "step 2"),
        ("step 2", "random"),
    ]
    assert all(p["games"] == 6 and 0.0 <= p["score"] <= 6.0 for p in data["pairs"])
    assert (out / "ratings.png").stat().st_size > 0
    assert "| step 2 |" in capsys.readouterr().out
