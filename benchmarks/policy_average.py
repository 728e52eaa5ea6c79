"""Which policy to ship: the last iterate, or an average of the weights over steps? Measured on the default run.

Trains `spiral-train` (the default run, seeds given) keeping every step's weights (`--save-every 1`), then, for
each averaging rule, rebuilds the averaged weights at each evaluation step from those checkpoints and measures
them as evaluation does (the game's theory: first-hand NashConv, and the whole-match figure where the theory
reports it; same probes, same sampling seed). Averaging never changes training (the trainer keeps the average
beside the trained weights), so one set of runs measures every rule. Run by hand (minutes per seed):

    python benchmarks/policy_average.py --seeds 0 1 2 3 4 --jobs 2

Runs go to `runs/bench/policy_average/seed<k>` (a finished run is read, not trained again); the table is printed
and written to `runs/bench/policy_average/results.json`. The choice it informed is in docs/learning.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from learning import interval  # benchmarks/learning.py: mean ± 95% t-interval over seeds

RULES: dict[str, Callable[[int], float]] = {
    "last iterate": lambda t: 0.0,
    "EMA 0.8": lambda t: 0.8,
    "EMA 0.9": lambda t: 0.9,
    "EMA 0.95": lambda t: 0.95,
    "EMA 0.98": lambda t: 0.98,
    "uniform, all steps": lambda t: (t - 1) / t,  # avg_t = ((t-1) avg_{t-1} + w_t) / t: fictitious play's average
}
"""Rule name -> the decay applied when folding in the weights of step t (1-based): avg <- d avg + (1 - d) w_t."""
KEYS = ("strategy/nash_conv", "match/nash_conv")


def train(out: Path, seed: int) -> None:
    """The default run of `seed` with every step's checkpoint kept, unless `out` holds a finished one."""
    if (out / "done").exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "spiral_train.cli", "--seed", str(seed), "--no-progress", "--run-dir", str(out)]
    command += ["--save-every", "1", "--keep-checkpoints", "100000"]
    with open(out / "log.txt", "w") as log:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
    (out / "done").touch()


def measure(run: Path) -> dict[str, dict[int, dict[str, float]]]:
    """Rule -> evaluation step -> the theory's metrics (`KEYS`) of the averaged weights at that step."""
    import torch
    from safetensors.torch import load_file

    from spiral_train.checkpoint import checkpoint_dir, trained_weights
    from spiral_train.config import make_config, views
    from spiral_train.eval.games import evaluate
    from spiral_train.models import loading
    from spiral_train.rollout import policy
    from spiral_train.rollout.collector import Collector
    from spiral_train.rollout.generation import make_generator
    from spiral_train.run_folder import read_saved_config

    config = make_config("tiny-cpu", read_saved_config(run))
    model, tokenizer, _ = loading.load_model(views.ModelSource.from_config(config), torch.device("cpu"), print)
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    generator = make_generator(views.GenerationSettings.from_config(config), model, tokenizer)
    seat = policy.model_policy(generator, tokenizer, views.Sampling.from_config(config), torch.Generator())
    collector = Collector(config.num_envs, config.game_kwargs())
    env_id = config.env_ids[0]
    evals = [s for s in range(0, config.steps + 1, config.eval_every)] + [config.steps]
    out: dict[str, dict[int, dict[str, float]]] = {}
    for rule, decay in RULES.items():
        average = {name: t.clone() for name, t in start.items()}
        out[rule] = {}
        for step in range(0, config.steps + 1):
            if step > 0:
                weights = load_file(trained_weights(checkpoint_dir(run) / f"step_{step:06d}") / "model.safetensors")
                for name, t in average.items():
                    t.lerp_(weights[name], 1.0 - decay(step))
            if step in evals:
                with torch.no_grad():
                    for name, param in model.named_parameters():
                        param.copy_(average[name])
                record = evaluate(
                    seat, [env_id], [], config.eval_games, config.eval_temperature, collector, seed=config.seed,
                    probe_samples=config.eval_probe_samples, probe_positions=config.eval_probe_positions,
                )  # fmt: skip
                out[rule][step] = {k: record[f"eval/{env_id}/{k}"] for k in KEYS if f"eval/{env_id}/{k}" in record}
        print(run.name, rule, {s: round(m.get(KEYS[0], math.nan), 3) for s, m in out[rule].items()}, flush=True)
    return out


def table(results: dict[int, dict[str, dict[int, dict[str, float]]]]) -> Iterator[str]:
    """Markdown rows: per rule and metric, the mean over seeds with its 95% t-interval at each evaluation step,
    and every seed's last value."""
    seeds = sorted(results)
    first = results[seeds[0]]
    steps = sorted(next(iter(first.values())))
    for key in KEYS:
        if key not in first["last iterate"][steps[-1]]:
            continue
        yield f"\n{key} (mean ± 95% t over seeds {', '.join(map(str, seeds))})\n"
        yield "| policy | " + " | ".join(f"step {s}" for s in steps) + " | last, per seed |"
        yield "|---" * (len(steps) + 2) + "|"
        for rule in RULES:
            cells = [interval([results[seed][rule][step][key] for seed in seeds]) for step in steps]
            last = " / ".join(f"{results[seed][rule][steps[-1]][key]:.2f}" for seed in seeds)
            yield f"| {rule} | " + " | ".join(cells) + f" | {last} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=2, help="training runs side by side (one torch thread each)")
    parser.add_argument("--root", type=Path, default=Path("runs/bench/policy_average"))
    args = parser.parse_args()
    runs = {seed: args.root / f"seed{seed}" for seed in args.seeds}
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda seed: train(runs[seed], seed), args.seeds))
    results = {seed: measure(run) for seed, run in runs.items()}
    (args.root / "results.json").write_text(json.dumps(results, indent=1))
    print("\n".join(table(results)))


if __name__ == "__main__":
    main()
