"""`spiral-train plot RUN_DIR`: the run's curves as one PNG, because people would rather look than read."""

from __future__ import annotations

import argparse
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
        ("Evaluation win rate", lambda k: k.startswith("eval/") and k.endswith("/win_rate")),
        ("Evaluation invalid rate", lambda k: k.startswith("eval/") and k.endswith("/invalid_rate")),
        ("Training reward and invalid rate", lambda k: k in ("train/reward_mean", "train/invalid_rate")),
        ("RAE baselines", lambda k: k.startswith("rae/baseline/")),
        ("Loss", lambda k: k in ("loss",)),
        ("Response length (tokens)", lambda k: k == "train/response_len"),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    for ax, (title, wanted) in zip(axes.flat, panels):
        keys = sorted({k for r in records for k in r if wanted(k)})
        for key in keys:
            points = [(r["step"], r[key]) for r in records if key in r]
            ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                marker="o" if len(points) < 30 else None,
                markersize=3,
                label=key.replace("eval/", "").replace("rae/baseline/", ""),
            )
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if keys:
            ax.legend(fontsize=7)
    fig.suptitle(f"spiral-train: {run_dir}")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spiral-train plot", description="Plot a run's metrics.jsonl to PNG.")
    parser.add_argument("run_dir")
    parser.add_argument("--out", help="PNG path (default RUN_DIR/curves.png)")
    args = parser.parse_args(argv)
    print(plot_run(args.run_dir, args.out))
    return 0
