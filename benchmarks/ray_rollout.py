"""Ray rollouts: games per second on 1 and 2 rollout workers (and in-process), and sync against async step time.

Part 1 plays the same seeded self-play games (tiny default model, 5-round Kuhn Poker) on the driver's own
collector, on a `RolloutPool` of 1 worker and on one of 2 workers, alternating the three in repetitions, and
prints the median games per second and the ratios. Part 2 runs the whole trainer loop on Ray (2 workers, one
learner, no evaluation) in sync and in async mode, alternating, and prints the median step time.

On a machine with fewer free cores than workers + learner the workers share cores, and that bounds what
they can gain; say how many cores the machine had, and how busy it was, with the figures.

    .venv/bin/python benchmarks/ray_rollout.py             # needs the ray extra
    .venv/bin/python benchmarks/ray_rollout.py --games 64 --repeats 3 --steps 6
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import time
from pathlib import Path

import ray
import torch

from spiral_train.config import make_config, to_dict
from spiral_train.config.views import ModelSource, RaySettings, WorkerSettings
from spiral_train.distributed.learner_group import play_weights
from spiral_train.distributed.local_ray import init_local_ray
from spiral_train.distributed.rollouts import RolloutPool
from spiral_train.metrics import read_metrics
from spiral_train.models.loading import load_model, tiny_spec
from spiral_train.models.tiny import tiny_model_path
from spiral_train.rollout.collector import Collector, ModelPolicy
from spiral_train.rollout.generation import HFGenerator
from spiral_train.rollout.records import LEARNER, Match
from spiral_train.trainer import Trainer

SELF_PLAY = {"player_0": LEARNER, "player_1": LEARNER}


def rollout_rates(args: argparse.Namespace) -> None:
    config = make_config("tiny-cpu", {"games_per_step": args.games, "num_envs": args.games})
    source = str(tiny_model_path(tiny_spec(ModelSource.from_config(config))))
    model, tokenizer, _ = load_model(ModelSource.from_config(config), torch.device("cpu"))
    weights = ray.put(play_weights(model))
    policy = ModelPolicy(HFGenerator(model, tokenizer), tokenizer, "qwen3", 1.0, 8, torch.Generator())
    local = Collector(args.games)
    layouts = {n: make_config("tiny-cpu", {**to_dict(config), "ray_workers": n}) for n in (1, 2)}
    pools = {
        n: RolloutPool(RaySettings.from_config(c), WorkerSettings.from_config(c, source)) for n, c in layouts.items()
    }
    rates: dict[str, list[float]] = {"in-process": [], "1 worker": [], "2 workers": []}
    for rep in range(args.repeats):
        matches = [Match("KuhnPoker-v1", 1000 * rep + i, SELF_PLAY) for i in range(args.games)]
        t0 = time.perf_counter()
        local.play(matches, {LEARNER: policy}, keep_transcripts=False)
        rates["in-process"].append(args.games / (time.perf_counter() - t0))
        for n, pool in pools.items():
            t0 = time.perf_counter()
            pool.collect(matches, 0, weights, args.games)
            rates[f"{n} worker{'s' if n > 1 else ''}"].append(args.games / (time.perf_counter() - t0))
    for pool in pools.values():
        pool.shutdown()
    base = statistics.median(rates["1 worker"])
    print(f"\ngames/s, {args.games} games of 5-round Kuhn Poker a batch, median of {args.repeats}:")
    for name, values in rates.items():
        print(f"  {name:11s} {statistics.median(values):7.1f}  ({statistics.median(values) / base:.2f}x 1 worker)")


def step_times(args: argparse.Namespace) -> None:
    times: dict[str, list[float]] = {"sync": [], "async": []}
    for rep in range(args.repeats):
        for mode in ("sync", "async") if rep % 2 == 0 else ("async", "sync"):
            config = make_config(
                "tiny-cpu",
                {
                    "steps": args.steps,
                    "games_per_step": args.games,
                    "num_envs": args.games,
                    "eval_games": 0,
                    "progress": False,
                    "log_transcripts": 0,
                    "save_every": args.steps,
                    "ray_workers": 2,
                    "async_mode": mode == "async",
                },
            )
            with tempfile.TemporaryDirectory() as tmp:
                Trainer(config, Path(tmp) / "run", log=lambda *_: None).run()
                stamps = [r["time_s"] for r in read_metrics(Path(tmp) / "run")]
            # from step 2 on: step 1 of async mode has no batch played ahead yet
            times[mode].append(statistics.median(b - a for a, b in itertools.pairwise(stamps[1:])))
    sync, asyn = statistics.median(times["sync"]), statistics.median(times["async"])
    print(f"\nstep time, 2 workers + 1 learner, {args.games} games a step, median over steps 2..{args.steps}:")
    print(f"  sync  {sync:6.2f} s\n  async {asyn:6.2f} s  ({sync / asyn:.2f}x faster than sync)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--games", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--only", choices=["rates", "steps"], help="run one part only")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
    init_local_ray(num_cpus=4)
    try:
        if args.only != "steps":
            rollout_rates(args)
        if args.only != "rates":
            step_times(args)
    finally:
        ray.shutdown()
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
