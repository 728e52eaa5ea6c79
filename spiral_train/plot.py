"""`spiral-train plot RUN_DIR`: the run's curves as one PNG, because people would rather look than read.

The panels are what tells learning from collapse: exploitability and optimal-move rates (the strategy), win
rate and mean return against each opponent with their 95% intervals, invalid and truncated answers, token entropy,
move-choice entropy, response length, the RAE baselines, and the reasoning benchmarks' accuracy (`eval_reasoning`).
A panel is drawn only when the run measured one of its metrics; `PANELS` is the whole table (a key pattern and
a readable label per series, the quantity and unit per axis). The self-play reward mean is not drawn: it is 0 by
construction.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spiral_train.metrics import read_metrics

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ENV = r"(?P<env>[^/]+)"
OPPONENT = r"(?P<opponent>(?!strategy/|match/|policy/)[^/]+)"
DENSE = 20
"""A series with at least this many points (a per-step training series) is drawn thin with its running mean."""


@dataclass(frozen=True)
class Series:
    pattern: str
    """A regular expression the whole metric key matches; its named groups fill `label`."""
    label: str


@dataclass(frozen=True)
class Panel:
    title: str
    ylabel: str
    """The quantity and its unit."""
    series: tuple[Series, ...]
    zero: bool = True
    """The y-axis starts at 0 (a rate, length, entropy or NashConv); else it spans at least a fifth of the values'
    size, so that noise is not magnified."""
    percent: bool = False
    """The values are fractions, drawn as percent."""


PANELS = (
    Panel(
        "Exploitability (0 = equilibrium)",
        "NashConv (payoff per game)",
        (
            Series(rf"eval/{ENV}/strategy/nash_conv", "NashConv (first hand)"),
            Series(rf"eval/{ENV}/match/nash_conv", "NashConv (whole match)"),
            Series(rf"last_iterate/{ENV}/strategy/nash_conv", "NashConv (first hand), last iterate"),
            Series(rf"last_iterate/{ENV}/match/nash_conv", "NashConv (whole match), last iterate"),
        ),
    ),
    Panel(
        "Optimal moves (minimax)",
        "optimal-move rate (%)",
        (
            Series(rf"eval/{ENV}/strategy/optimal_move_rate", "optimal-move rate"),
            Series(rf"eval/{ENV}/strategy/optimal_move_rate_random", "uniform random play"),
        ),
        percent=True,
    ),
    Panel(
        "Evaluation win rate",
        "win rate (%)",
        (Series(rf"eval/{ENV}/{OPPONENT}/win_rate", "win rate vs {opponent}"),),
        percent=True,
    ),
    Panel(
        "Evaluation mean return",
        "mean return (payoff per game)",
        (Series(rf"eval/{ENV}/{OPPONENT}/mean_return", "mean return vs {opponent}"),),
        zero=False,
    ),
    Panel(
        "Invalid and truncated answers",
        "share of answers (%)",
        (
            Series(r"train/invalid_rate", "invalid (training)"),
            Series(r"train/truncated_rate", "truncated (training)"),
            Series(rf"eval/{ENV}/strategy/invalid_rate", "invalid (evaluation, first hand)"),
            Series(rf"eval/{ENV}/match/invalid_rate", "invalid (evaluation, whole match)"),
        ),
        percent=True,
    ),
    Panel("Token entropy", "entropy (nats per token)", (Series(r"entropy", "token entropy (training samples)"),)),
    Panel(
        "Move-choice entropy",
        "entropy (nats per decision)",
        (
            Series(rf"eval/{ENV}/strategy/entropy", "move-choice entropy"),
            Series(rf"last_iterate/{ENV}/strategy/entropy", "move-choice entropy, last iterate"),
        ),
    ),
    Panel("Response length", "length (tokens per answer)", (Series(r"train/response_len", "response length"),)),
    Panel(
        "RAE baselines",
        "baseline (mean return, payoff)",
        (
            Series(rf"rae/baseline/{ENV}/(?P<role>[^/]+)", "baseline {role}"),
            Series(rf"rae/baseline/{ENV}/(?P<role>[^/]+)/{OPPONENT}", "baseline {role} vs {opponent}"),
        ),
        zero=False,
    ),
    Panel(
        "Reasoning benchmarks",
        "accuracy, avg@n (%)",
        (Series(r"eval/reasoning/(?P<benchmark>[^/]+)/accuracy", "{benchmark}"),),
        percent=True,
    ),
)


def tidy_key(key: str) -> str:
    """A metric key no table entry names, made readable: "eval/MyGame-v0/x/score" -> "MyGame-v0 · x · score"."""
    key = key.removeprefix("eval/").replace("/strategy/", "/")
    return " · ".join(part.replace("_", " ") for part in key.split("/"))


def metric_label(key: str, with_env: bool = False) -> str:
    """The legend name of a metric key: its table entry's label (with the env when `with_env`), else `tidy_key`."""
    found = _match(key)
    if found is None:
        return tidy_key(key)
    label = found[0].label.format(**found[1])
    return f"{label} ({found[1]['env']})" if with_env and "env" in found[1] else label


def _match(key: str) -> tuple[Series, dict[str, str]] | None:
    """The table's series a metric key belongs to, with the pattern's groups (env, opponent, ...)."""
    for panel in PANELS:
        for series in panel.series:
            if (found := re.fullmatch(series.pattern, key)) is not None:
                return series, found.groupdict()
    return None


def figure(records: list[dict[str, Any]], title: str) -> Figure:
    """The run's panels, one per quantity measured, in a grid sized to what is drawn (x: the training step)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    keys = sorted({k for r in records for k, v in r.items() if isinstance(v, (int, float))})
    drawn = [(panel, [k for s in panel.series for k in keys if re.fullmatch(s.pattern, k)]) for panel in PANELS]
    drawn = [(panel, found) for panel, found in drawn if found]
    envs = {found[1].get("env") for k in keys if (found := _match(k)) is not None} - {None}
    columns = min(3, max(1, len(drawn)))
    rows = max(1, math.ceil(len(drawn) / columns))
    fig = Figure(figsize=(6 * columns, 4.5 * rows))
    axes = list(fig.subplots(rows, columns, squeeze=False).flat)
    for ax, (panel, found) in zip(axes, drawn):
        for key in found:
            _draw(ax, records, key, metric_label(key, with_env=len(envs) > 1))
        ax.set_title(panel.title, fontsize=11)
        ax.set_xlabel("training step")
        ax.set_ylabel(panel.ylabel)
        ax.grid(alpha=0.3)
        _y_range(ax, panel.zero)
        if panel.percent:
            ax.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=None))
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2, frameon=False)  # off the data
    for ax in axes[len(drawn) :]:  # the grid's unused cells
        ax.set_visible(False)
    if not drawn:
        fig.text(0.5, 0.5, "metrics.jsonl holds no metric this plot draws", ha="center", va="center")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _draw(ax: Any, records: list[dict[str, Any]], key: str, label: str) -> None:
    """One series: a dense one thin with its running mean over it, a sparse one with markers; its 95% interval
    (`<key>_lo`, `<key>_hi`) as a band (dense) or error bars (sparse)."""
    points = [(r["step"], r[key], r.get(f"{key}_lo"), r.get(f"{key}_hi")) for r in records if key in r]
    steps, values = [p[0] for p in points], [p[1] for p in points]
    interval = all(p[2] is not None and p[3] is not None for p in points)
    if len(points) >= DENSE:
        window = max(3, len(points) // 10) | 1
        (raw,) = ax.plot(steps, values, linewidth=0.6, alpha=0.35)
        mean = _running_mean(values, window)
        ax.plot(steps, mean, color=raw.get_color(), linewidth=1.8, label=f"{label} ({window}-step mean)")
        if interval:
            ax.fill_between(steps, [p[2] for p in points], [p[3] for p in points], color=raw.get_color(), alpha=0.15)
        return
    if interval:
        below = [max(0.0, v - p[2]) for v, p in zip(values, points)]
        above = [max(0.0, p[3] - v) for v, p in zip(values, points)]
        ax.errorbar(steps, values, yerr=[below, above], marker="o", markersize=3, capsize=3, linewidth=1.2, label=label)
    else:
        ax.plot(steps, values, marker="o", markersize=3, linewidth=1.2, label=label)


def _running_mean(values: list[float], window: int) -> list[float]:
    """The mean of each value's centred `window` (shorter at the ends)."""
    half = window // 2
    means = []
    for i in range(len(values)):
        around = values[max(0, i - half) : i + half + 1]
        means.append(sum(around) / len(around))
    return means


def _y_range(ax: Any, zero: bool) -> None:
    """From 0 (`zero`), else around the data with a span of at least a fifth of their size: a flat series stays flat."""
    low, high = ax.get_ylim()
    if zero:
        ax.set_ylim(0.0, 1.1 * high if high > 0 else 1.0)  # headroom over a series far from 0
        return
    need = 0.2 * max(abs(low), abs(high), 1e-3)
    if high - low < need:
        middle = (low + high) / 2
        ax.set_ylim(middle - need / 2, middle + need / 2)


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    run_dir = Path(run_dir)
    records = read_metrics(run_dir)
    out = Path(out) if out else run_dir / "curves.png"
    fig = figure(records, f"spiral-train: {run_dir}")
    fig.savefig(out, dpi=100)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spiral-train plot", description="Plot a run's metrics.jsonl to PNG.")
    parser.add_argument("run_dir")
    parser.add_argument("--out", help="PNG path (default RUN_DIR/curves.png)")
    args = parser.parse_args(argv)
    try:
        print(plot_run(args.run_dir, args.out))
    except (OSError, ValueError) as err:  # a folder without metrics, a bad line, a PNG that cannot be written
        where = f"{err.filename}: {err.strerror}" if isinstance(err, OSError) and err.filename else str(err)
        fix = "; give --out a path you can write" if isinstance(err, PermissionError) else ""
        print(f"spiral-train plot: error: {where}{fix}", file=sys.stderr)
        return 2
    return 0
