"""Does training learn the game? Runs `spiral-train` over seeds and prints each table with 95% intervals.

A fixed-seed run gives other numbers on another CPU, so every claim about learning is made over seeds:
mean over seeds with a t-interval, next to each seed's value. Run by hand (each run takes minutes):

    python benchmarks/learning.py default                # the default run, seeds 0 1 2
    python benchmarks/learning.py tictactoe              # spiral-train --env-ids TicTacToe-v0
    python benchmarks/learning.py rae --steps 30         # RAE ema / batch / none on two asymmetric games
    python benchmarks/learning.py rae --only Kuhn        # only the rows whose name holds "Kuhn"
    python benchmarks/learning.py opponents              # self-play against a fixed random or strong opponent
    python benchmarks/learning.py collapse --seeds 0 1 2 3 4   # RAE against thinking collapse (no KL anchor)
    python benchmarks/learning.py match-opponents --seeds 0 1 2 3 4  # self-play vs fixed opponents, the match
    python benchmarks/learning.py multigame --seeds 0 1 2 3 4  # TicTacToe + Kuhn Poker against each alone

Tables: `default` and `tictactoe` report the bar of the learning issue (NashConv of the first-hand policy,
invalid and cut-off answers, optimal-move rate); `rae` compares the three advantage estimators (with the
per-state baseline off, so that RAE alone is measured, and once on) on TicTacToe and on one-round chip-scored
Kuhn Poker (a fixed starter, so the roles are asymmetric: -1/18 for the first player);
`opponents` trains one-round chip-scored Kuhn Poker by self-play or against a fixed opponent and judges each
by exploitability. The paper's two claims in miniature: `collapse` compares RAE `ema`, `batch` and `none` with
no KL anchor on the default 5-round Kuhn Poker (per-state baseline off) by how long the card restatement
(`Card: Q.`, the tiny model's reasoning trace) survives and stays right, by 10-step window, and by NashConv;
`match-opponents` trains the default run by self-play, against `random`, against `strong` and against a pool
of its own snapshots, judged by the first-hand and the whole-match NashConv; `multigame` trains TicTacToe and
Kuhn Poker together and each alone (each run builds the tiny model for its own games).
Runs go to `runs/bench/<table>/<name>/seed<k>`; a finished run is read, not run again.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

KUHN_ONE_ROUND_CHIPS = ["--env-kwargs", '{"KuhnPoker-v1": {"num_rounds": 1, "scoring": "chips"}}']
TICTACTOE = ["--env-ids", "TicTacToe-v0"]
NASH = "eval/KuhnPoker-v1/strategy/nash_conv"
MATCH = "eval/KuhnPoker-v1/match/nash_conv"
OPTIMAL = "eval/TicTacToe-v0/strategy/optimal_move_rate"
PROBE_INVALID = "eval/TicTacToe-v0/strategy/invalid_rate"

EMA_095 = ["--policy-average-decay", "0.95"]
"""The paper's two claims and the multi-game row were measured when the policy average's decay was 0.95 (the
default until it became 0.97, docs/learning.md); they keep it, so that they regenerate what the README shows."""

TABLES: dict[str, dict[str, list[str]]] = {
    "default": {"spiral-train": []},
    "tictactoe": {"TicTacToe": TICTACTOE},
    "rae": {
        f"{game} {name}": [*args, *flags]
        for game, args in (("TicTacToe", TICTACTOE), ("Kuhn 1 round, chips", KUHN_ONE_ROUND_CHIPS))
        for name, flags in (
            *((f"rae={mode}", ["--rae", mode, "--no-state-baseline"]) for mode in ("ema", "batch", "none")),
            ("rae=ema + state baseline", ["--rae", "ema", "--state-baseline"]),
        )
    },
    "opponents": {
        f"opponent={kind}": [*KUHN_ONE_ROUND_CHIPS, "--opponent", kind] for kind in ("self", "random", "strong")
    },
    "collapse": {
        f"rae={mode}": [*EMA_095, "--kl-coef", "0", "--rae", mode, "--no-state-baseline", "--log-transcripts", "16"]
        for mode in ("ema", "batch", "none")
    },
    "match-opponents": {
        "self-play": EMA_095,
        "against random": [*EMA_095, "--opponent", "random"],
        "against strong": [*EMA_095, "--opponent", "strong"],
        "against a pool of its snapshots": [*EMA_095, "--pool-every", "10", "--pool-share", "0.5"],
    },
    "multigame": {
        "Kuhn Poker alone": EMA_095,
        "TicTacToe alone": [*EMA_095, *TICTACTOE],
        "TicTacToe + Kuhn Poker": [*EMA_095, "--env-ids", "TicTacToe-v0", "KuhnPoker-v1", "--env-weights", "1", "1"],
    },
}
T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}
"""Two-sided 95% Student-t quantiles by degrees of freedom (seeds - 1)."""


def run(out: Path, args: list[str], seed: int, steps: int | None) -> list[dict]:
    """One training run (skipped when `out` already holds a finished one); its metrics records."""
    metrics = out / "metrics.jsonl"
    done = out / "done"
    if not done.exists():
        command = [sys.executable, "-m", "spiral_train.cli", *args, "--seed", str(seed), "--no-progress"]
        command += ["--run-dir", str(out)] + (["--steps", str(steps)] if steps else [])
        out.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        with open(out / "log.txt", "w") as log:
            subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
        done.touch()
    return [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]


def summary(records: list[dict]) -> dict[str, float]:
    """The numbers each table reports, from a run's first and last evaluation and its training records."""
    evals = [r for r in records if any(k.startswith("eval/") for k in r)]
    first, last = evals[0], evals[-1]
    trained = [r for r in records if "train/invalid_rate" in r][-5:]  # the last five steps
    out = {
        "invalid (train, last 5 steps)": statistics.fmean(r["train/invalid_rate"] for r in trained),
        "cut off (train, last 5 steps)": statistics.fmean(r["train/truncated_rate"] for r in trained),
        "minutes": records[-1]["time_s"] / 60,
    }
    for key, name in ((NASH, "NashConv"), (MATCH, "match NashConv"), (OPTIMAL, "optimal-move rate")):
        if key in last:
            out[f"{name} first"] = first[key]
            out[f"{name} last"] = last[key]
    if OPTIMAL in last:
        out["invalid (probes, first eval)"] = first[PROBE_INVALID]
        out["invalid (probes, worst eval)"] = max(r[PROBE_INVALID] for r in evals if PROBE_INVALID in r)
    for key in sorted(last):
        if key.endswith("/strong/win_rate"):
            out["win vs strong: last - first"] = last[key] - first[key]
            out["win vs strong: rise, 95% lo"] = rise_lower_bound(first, last, key)
    return out


def restatement(out: Path, window: int = 10) -> dict[str, float]:
    """From the run's Kuhn Poker transcripts, per `window` steps: the share of model answers that restate the
    true card (`Card: X.` with X the card in the prompt) and the mean answer length in characters."""
    by_window: dict[int, list[tuple[bool, int]]] = {}
    path = out / "transcripts.jsonl"
    for line in path.read_text().splitlines() if path.exists() else ():
        game = json.loads(line)
        if game.get("env_id") != "KuhnPoker-v1":
            continue
        for turn in game["turns"]:
            card = re.search(r"Your card: ([JQK])\.", turn.get("observation") or "")
            if card is None or turn.get("answer") is None:
                continue
            said = re.match(r"\s*Card: ([JQK])\.", turn["answer"])
            right = said is not None and said.group(1) == card.group(1)
            by_window.setdefault((game["step"] - 1) // window, []).append((right, len(turn["answer"])))
    out_: dict[str, float] = {}
    for w, turns in sorted(by_window.items()):
        label = f"steps {w * window + 1}-{(w + 1) * window}"
        out_[f"card restated right, {label}"] = sum(r for r, _ in turns) / len(turns)
        out_[f"answer chars, {label}"] = sum(n for _, n in turns) / len(turns)
    return out_


def rise_lower_bound(first: dict, last: dict, key: str) -> float:
    """The lower end of Newcombe's 95% interval for the rise of a rate from `first` to `last` (independent
    samples), from each evaluation's Wilson interval: the rise is larger than its interval where this is > 0."""
    p1, p0 = last[key], first[key]
    return (p1 - p0) - math.sqrt((p1 - last[key + "_lo"]) ** 2 + (first[key + "_hi"] - p0) ** 2)


def interval(values: list[float]) -> str:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.3f}"
    half = T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))
    return f"{mean:.3f} ± {half:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", choices=sorted(TABLES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, help="steps per run (default: the preset's)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (each on one torch thread)")
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--only", help="run only the rows whose name holds this text, e.g. Kuhn")
    args = parser.parse_args(argv)
    table = {name: flags for name, flags in TABLES[args.table].items() if args.only is None or args.only in name}
    jobs = [(name, flags, seed) for name, flags in table.items() for seed in args.seeds]
    root = Path(args.out) / args.table

    def one(job):
        name, flags, seed = job
        folder = root / name.replace(" ", "_").replace(",", "").replace("=", "-") / f"seed{seed}"
        result = {**summary(run(folder, flags, seed, args.steps)), **restatement(folder)}
        print(f"  done: {name}, seed {seed}: {json.dumps({k: round(v, 3) for k, v in result.items()})}", flush=True)
        return name, seed, result

    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(one, jobs))
    columns = sorted({k for _, _, r in results for k in r})
    print(f"\n| run | {' | '.join(columns)} |\n|---|{'---|' * len(columns)}")
    for name in table:
        rows = [r for n, _, r in results if n == name]
        cells = [interval([r[c] for r in rows if c in r]) if any(c in r for r in rows) else "" for c in columns]
        print(f"| {name} | {' | '.join(cells)} |")
    (root / "results.json").write_text(json.dumps([{"run": n, "seed": s, **r} for n, s, r in results], indent=1))
    print(f"\nmean ± 95% t-interval over seeds {args.seeds}; per-seed values in {root / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
