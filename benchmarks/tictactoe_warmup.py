"""Does the TicTacToe warm-up land past its jump? Builds a TicTacToe-only tiny model with the given warm-up settings
on the given number of torch threads, then measures its invalid-answer rate at the 120 probe positions exactly as
the first evaluation of `spiral-train --env-ids TicTacToe-v0` does (same config, same probes, evaluation seeds
given). No training. Run by hand, one build at a time (minutes each):

    OMP_NUM_THREADS=1 python benchmarks/tictactoe_warmup.py --threads 1 --set warmup_steps=800

`--set` overrides a `TinySpec` field of the spec the trainer uses (`spiral_train.models.loading.tiny_spec`); with
none, the trainer's own spec is built. The build goes to a temporary folder, not the cache. One JSON line per run
is printed and appended to `--out`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for the build")
    parser.add_argument("--set", nargs="*", default=[], help="TinySpec overrides, field=value (a Python literal)")
    parser.add_argument("--eval-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--model", type=Path, help="measure this built model folder instead of building one")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/tictactoe_warmup.jsonl"))
    args = parser.parse_args()

    import ast

    import torch

    from spiral_train.config import make_config, views
    from spiral_train.eval.games import evaluate
    from spiral_train.models import loading
    from spiral_train.models.tiny import build_tiny_model
    from spiral_train.rollout import policy
    from spiral_train.rollout.collector import Collector
    from spiral_train.rollout.generation import make_generator

    torch.set_num_threads(args.threads)
    config = make_config("tiny-cpu", {"env_ids": ["TicTacToe-v0"]})
    source = views.ModelSource.from_config(config)
    overrides = {k: ast.literal_eval(v) for k, v in (item.split("=", 1) for item in args.set)}
    spec = dataclasses.replace(loading.tiny_spec(source), **overrides)
    losses: list[str] = []
    with tempfile.TemporaryDirectory() as work:
        folder = args.model or Path(work)
        build_s = None
        if args.model is None:
            started = time.monotonic()
            build_tiny_model(spec, folder, log=lambda line: (losses.append(line), print(line, flush=True)))
            build_s = time.monotonic() - started
        source = dataclasses.replace(source, model=str(folder))
        model, tokenizer, _ = loading.load_model(source, torch.device("cpu"), lambda *_: None)
    generator = make_generator(views.GenerationSettings.from_config(config), model, tokenizer)
    seat = policy.model_policy(generator, tokenizer, views.Sampling.from_config(config), torch.Generator())
    seat = dataclasses.replace(seat, top_k=config.eval_top_k, top_p=config.eval_top_p)
    collector = Collector(config.num_envs, config.game_kwargs())
    invalid = {}
    for seed in args.eval_seeds:
        record = evaluate(
            seat, ["TicTacToe-v0"], [], config.eval_games, config.eval_temperature, collector, seed=seed,
            probe_samples=config.eval_probe_samples, probe_positions=config.eval_probe_positions,
        )  # fmt: skip
        invalid[seed] = record["eval/TicTacToe-v0/strategy/invalid_rate"]
        print(f"eval seed {seed}: invalid {invalid[seed]:.4f}", flush=True)
    row = {
        "set": overrides,
        "model": str(args.model) if args.model else None,
        "threads": args.threads,
        "build_s": build_s,
        "invalid": invalid,
        "invalid_mean": sum(invalid.values()) / len(invalid),
        "last_loss": losses[-1] if losses else None,
    }
    print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as out:
        out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
