"""`spiral-train plot RUN_DIR`: the run's curves as one PNG, because people would rather look than read.

The panels are what tells learning from collapse: exploitability and optimal-move rates (the strategy), win
rate and mean return against each opponent with their 95% intervals as bands, invalid and truncated answers,
entropy, response length, the RAE baselines, and the reasoning benchmarks' accuracy (`eval_reasoning`).
The self-play reward mean is not drawn: it is 0 by construction.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spiral_train.metrics import read_metrics


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    records = read_metrics(run_dir)
    out = Path(out) if out else run_dir / "curves.png"
    panels = [
        (
            "Exploitability: NashConv (0 = equilibrium; first hand, whole match)",
            lambda k: k.endswith(("/strategy/nash_conv", "/match/nash_conv")),
        ),
        ("Optimal-move rate (minimax)", lambda k: k.endswith("/strategy/optimal_move_rate")),
        ("Evaluation win rate", lambda k: _rate(k, "win_rate")),
        ("Evaluation mean return", lambda k: _rate(k, "mean_return")),
        (
            "Invalid and truncated answers",
            lambda k: k in ("train/invalid_rate", "train/truncated_rate") or k.endswith("/strategy/invalid_rate"),
        ),
        ("Entropy (token; move choice per state)", lambda k: k == "entropy" or k.endswith("/strategy/entropy")),
        ("Response length (tokens)", lambda k: k == "train/response_len"),
        ("RAE baselines", lambda k: k.startswith("rae/baseline/")),
        ("Reasoning accuracy (avg@n)", lambda k: k.startswith("eval/reasoning/") and k.endswith("/accuracy")),
    ]
    fig, axes = plt.subplots(3, 3, figsize=(18, 12))
    for ax, (title, wanted) in zip(axes.flat, panels):
        keys = sorted({k for r in records for k in r if wanted(k)})
        for key in keys:
            points = [(r["step"], r[key], r.get(f"{key}_lo"), r.get(f"{key}_hi")) for r in records if key in r]
            steps = [p[0] for p in points]
            (line,) = ax.plot(
                steps,
                [p[1] for p in points],
                marker="o" if len(points) < 30 else None,
                markersize=3,
                label=_label(key),
            )
            if all(p[2] is not None and p[3] is not None for p in points):  # the 95% interval as a band
                ax.fill_between(
                    steps, [p[2] for p in points], [p[3] for p in points], color=line.get_color(), alpha=0.2
                )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if keys:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not measured in this run", ha="center", va="center", transform=ax.transAxes, alpha=0.5)
    fig.suptitle(f"spiral-train: {run_dir}")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _label(key: str) -> str:
    for prefix in ("eval/reasoning/", "eval/", "rae/baseline/"):
        key = key.removeprefix(prefix)
    return key.replace("/strategy", "")


def _rate(key: str, name: str) -> bool:
    """An evaluation rate against an opponent: `eval/<env>/<opponent>/<name>`, not a strategy metric."""
    parts = key.split("/")
    theory = ("strategy", "match", "policy")
    return len(parts) == 4 and parts[0] == "eval" and parts[2] not in theory and parts[3] == name


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
