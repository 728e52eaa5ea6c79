"""`spiral-train plot`: a panel per quantity the run measured, each axis labelled, legends in words, y-ranges
that do not magnify noise. The default run's metrics (tests/train/data/default_run_metrics.jsonl) are a real
`spiral-train` run (80 steps, seed 0), with the keys the plot does not draw mostly left out to keep the file small."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from spiral_train.metrics import read_metrics
from spiral_train.plot import figure, metric_label, plot_run, tidy_key

DEFAULT_RUN = Path(__file__).parent / "data" / "default_run_metrics.jsonl"


def visible_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend is not None else []


def by_title(fig) -> dict:
    return {ax.get_title(): ax for ax in visible_axes(fig)}


@pytest.fixture
def default_run(tmp_path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(DEFAULT_RUN, run / "metrics.jsonl")
    return run


def test_the_default_runs_plot_draws_what_it_measured_with_labelled_axes_and_worded_legends(default_run):
    fig = figure(read_metrics(default_run), "default")
    panels = by_title(fig)
    assert set(panels) == {
        "Exploitability (0 = equilibrium)",
        "Evaluation win rate",
        "Evaluation mean return",
        "Invalid and truncated answers",
        "Token entropy",
        "Move-choice entropy",
        "Response length",
        "RAE baselines",
    }  # no optimal-move or reasoning panel: Kuhn Poker has no minimax probe, the run no reasoning benchmark
    texts = [t.get_text() for t in fig.texts] + [t.get_text() for ax in fig.axes for t in ax.texts]
    assert not any("not measured" in t for t in texts)
    assert len(fig.axes) == 9  # a 3 x 3 grid for 8 panels, the last cell hidden
    for title, ax in panels.items():
        assert ax.get_xlabel() == "training step", title
        assert ax.get_ylabel().strip(), title
        labels = legend_texts(ax)
        assert labels, title
        assert not any("/" in label or "_rate" in label for label in labels), (title, labels)  # no raw metric key
    assert legend_texts(panels["Exploitability (0 = equilibrium)"])[:2] == [
        "NashConv (first hand)",
        "NashConv (whole match)",
    ]
    assert "win rate vs strong" in legend_texts(panels["Evaluation win rate"])
    assert "(%)" in panels["Evaluation win rate"].get_ylabel()
    # one quantity per axis: token entropy and move-choice entropy apart, each with its unit
    assert all("token" in t for t in legend_texts(panels["Token entropy"]))
    assert all("move-choice" in t for t in legend_texts(panels["Move-choice entropy"]))
    assert "nats per token" in panels["Token entropy"].get_ylabel()
    assert "nats per decision" in panels["Move-choice entropy"].get_ylabel()
    # response length (3.00-3.05 tokens) is drawn from 0, not as a noisy 0.05-token span
    assert panels["Response length"].get_ylim()[0] == 0.0
    # a per-step training series is drawn thin, with its running mean over it
    raw, mean = panels["Token entropy"].get_lines()[:2]
    assert raw.get_linewidth() < mean.get_linewidth()
    assert max(mean.get_ydata()) < max(raw.get_ydata())  # the step-8 spike is smoothed


def test_spiral_train_plot_writes_the_png(default_run, capsys):
    from spiral_train.cli import main

    assert main(["plot", str(default_run)]) == 0
    png = default_run / "curves.png"
    assert capsys.readouterr().out.strip() == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_run(default_run, default_run / "again.png") == default_run / "again.png"


def test_a_run_that_measured_one_quantity_gets_one_panel(tmp_path):
    records = [{"step": s, "entropy": 1.0 - 0.01 * s} for s in range(5)]
    fig = figure(records, "one")
    assert [ax.get_title() for ax in fig.axes] == ["Token entropy"]


def test_a_flat_series_is_not_magnified(tmp_path):
    """Mean return 0.500 +- 0.001: the axis spans at least a fifth of the value, not the 0.002 of noise."""
    records = [{"step": s, "eval/KuhnPoker-v1/random/mean_return": 0.5 + 0.001 * (-1) ** s} for s in range(6)]
    low, high = figure(records, "flat").axes[0].get_ylim()
    assert high - low >= 0.1
    assert low < 0.499 and high > 0.501


def test_labels_of_a_plugin_game_and_of_an_unknown_metric():
    assert metric_label("eval/MyGame-v0/greedy/win_rate") == "win rate vs greedy"
    assert metric_label("eval/MyGame-v0/greedy/win_rate", with_env=True) == "win rate vs greedy (MyGame-v0)"
    assert metric_label("eval/MyGame-v0/strategy/nash_conv") == "NashConv (first hand)"
    assert metric_label("eval/reasoning/gsm8k/accuracy") == "gsm8k"
    assert metric_label("eval/MyGame-v0/strategy/pot_share") == "MyGame-v0 · pot share"
    assert tidy_key("train/turns_per_game") == "train · turns per game"


def test_two_games_name_the_game_in_each_legend():
    records = [
        {"step": s, "eval/KuhnPoker-v1/random/win_rate": 0.4, "eval/TicTacToe-v0/random/win_rate": 0.6} for s in (0, 10)
    ]
    (ax,) = figure(records, "two").axes
    assert sorted(legend_texts(ax)) == ["win rate vs random (KuhnPoker-v1)", "win rate vs random (TicTacToe-v0)"]
