"""Can the tiny TicTacToe model hold the optimal moves at all? A supervised upper reference for the RL runs.

Fine-tunes the model `spiral-train --env-ids TicTacToe-v0` starts from (the cached build, built if missing) on
exact labels: every turn of uniformly random play, its answer every optimal move of the position (minimax),
weighted equally, as the warm-up does with every legal move. Every `--every` steps it measures the
optimal-move rate at the 120 probe positions exactly as a run's evaluation does, sampled at the evaluation
temperature (1.0) and greedily. RL sees one game's outcome where this sees the answer, so what this reaches in
N steps bounds what the model can learn, not what RL learns in N steps. Run by hand (minutes):

    OMP_NUM_THREADS=1 python benchmarks/tictactoe_capacity.py --steps 1500 --every 300

One JSON line per measurement is printed and appended to `--out`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500, help="supervised steps (the learning rate decays to 0)")
    parser.add_argument("--every", type=int, default=300, help="measure every this many steps")
    parser.add_argument("--batch", type=int, default=32, help="turns a step")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak AdamW learning rate (the warm-up's)")
    parser.add_argument("--games", type=int, default=3000, help="random games whose turns are the training set")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/tictactoe_capacity.jsonl"))
    args = parser.parse_args()

    import torch

    import spiral_envs
    from spiral_envs.games.tictactoe import optimal_moves
    from spiral_train.config import make_config, views
    from spiral_train.eval.games import evaluate
    from spiral_train.models import loading
    from spiral_train.models.tiny import tiny_model_path
    from spiral_train.models.warmup import WarmupTurn, imitate
    from spiral_train.rollout import policy
    from spiral_train.rollout.collector import Collector
    from spiral_train.rollout.generation import make_generator

    config = make_config("tiny-cpu", {"env_ids": ["TicTacToe-v0"]})
    source = views.ModelSource.from_config(config)
    folder = tiny_model_path(loading.tiny_spec(source))
    model, tokenizer, _ = loading.load_model(
        dataclasses.replace(source, model=str(folder)), torch.device("cpu"), lambda *_: None
    )
    rng = random.Random(1)
    env = spiral_envs.make("TicTacToe-v0")
    turns = []  # the warm-up's turns, with the optimal moves in place of the legal ones
    for _ in range(args.games):
        env.reset(seed=rng.randrange(2**31))
        while env.agents and not env.terminations[env.agent_selection]:
            info = env.infos[env.agent_selection]
            best = optimal_moves(info["view"]["board"], info["view"]["player"])
            turns.append(WarmupTurn(str(env.observe(env.agent_selection)), "", tuple(f"[{cell}]" for cell in best)))
            env.step(spiral_envs.boxed(rng.choice(info["legal_actions"])))
    print(f"{len(turns)} turns, {len({t.observation for t in turns})} distinct positions", flush=True)

    generator = make_generator(views.GenerationSettings.from_config(config), model, tokenizer)
    collector = Collector(config.num_envs, config.game_kwargs())

    def measure(step: int, seconds: float) -> None:
        model.eval()
        row = {"step": step, "train_s": round(seconds, 1)}
        for name, temperature in (("sampled", config.eval_temperature), ("greedy", 0.0)):
            seat = policy.model_policy(generator, tokenizer, views.Sampling.from_config(config), torch.Generator())
            record = evaluate(
                seat, ["TicTacToe-v0"], [], 2, temperature, collector, seed=0,
                probe_samples=config.eval_probe_samples, probe_positions=config.eval_probe_positions,
            )  # fmt: skip
            row[f"optimal_{name}"] = record["eval/TicTacToe-v0/strategy/optimal_move_rate"]
            row[f"invalid_{name}"] = record["eval/TicTacToe-v0/strategy/invalid_rate"]
        row["optimal_random_play"] = record["eval/TicTacToe-v0/strategy/optimal_move_rate_random"]
        left = seconds / step * (args.steps - step) if step else None
        print(json.dumps(row) + (f"  (about {left:.0f} s of updates left)" if left else ""), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a") as out:
            out.write(json.dumps(row) + "\n")
        model.train()

    measuring = [0.0]  # seconds spent measuring, left out of the updates' time

    def after_step(step: int) -> None:
        if step % args.every == 0 or step == args.steps:
            started = time.monotonic()
            measure(step, started - began - measuring[0])
            measuring[0] += time.monotonic() - started

    spec = dataclasses.replace(
        loading.tiny_spec(source), warmup_steps=args.steps, warmup_batch=args.batch, warmup_lr=args.lr
    )
    measure(0, 0.0)
    began = time.monotonic()
    imitate(model, tokenizer, turns, spec, rng, log=lambda *_: None, after_step=after_step)


if __name__ == "__main__":
    main()
