"""Games per second of the batched collector against playing the same games one at a time.

The paper's code plays Kuhn Poker one game at a time, each answer its own model call. Our collector keeps
`num_envs` games in flight and answers all their pending turns in one batched call. This script plays the
same seeded self-play games with the same model both ways, alternating the two in repetitions, and prints
games per second and the ratio (goal: at least 8x at num_envs=64).

    .venv/bin/python benchmarks/collector.py                 # tiny model, KuhnPoker-v1, CPU
    .venv/bin/python benchmarks/collector.py --device cuda --model /path/to/model
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from spiral_train.config import make_config
from spiral_train.config.views import ModelSource
from spiral_train.models.loading import load_model, resolve_device
from spiral_train.rollout.collector import Collector, ModelPolicy
from spiral_train.rollout.generation import HFGenerator
from spiral_train.rollout.records import LEARNER, Match


def games_per_second(policy: ModelPolicy, env_id: str, games: int, num_envs: int, seed: int) -> float:
    policy.torch_rng.manual_seed(seed)
    matches = [Match(env_id, seed + i, {"player_0": LEARNER, "player_1": LEARNER}) for i in range(games)]
    collector = Collector(num_envs=num_envs)
    started = time.perf_counter()
    collector.play(matches, {LEARNER: policy}, keep_transcripts=False)
    return games / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="KuhnPoker-v1")
    parser.add_argument("--model", default=None, help="model folder (default: the embedded tiny model)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--batched-games", type=int, default=128)
    parser.add_argument("--serial-games", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    args = parser.parse_args()

    config = make_config("tiny-cpu", {"model": args.model, "device": args.device, "env_ids": [args.env]})
    device = resolve_device(config.device)
    model, tokenizer, source = load_model(ModelSource.from_config(config), device, log=lambda *_: None)
    policy = ModelPolicy(
        HFGenerator(model, tokenizer, max_batch_size=args.num_envs),
        tokenizer,
        config.template,
        1.0,
        args.max_new_tokens,
        torch.Generator(device=device),
    )
    games_per_second(policy, args.env, 4, 4, seed=0)  # warm-up
    batched, serial = [], []
    for r in range(args.repeats):
        batched.append(games_per_second(policy, args.env, args.batched_games, args.num_envs, seed=1000 * r))
        serial.append(games_per_second(policy, args.env, args.serial_games, 1, seed=1000 * r))
    b, s = statistics.median(batched), statistics.median(serial)
    print(f"model {source} on {device}, {args.env}, {args.max_new_tokens} new tokens max, {args.repeats} repeats")
    print(f"{'collector':<28}{'games/s':>10}")
    print(f"{f'batched, num_envs={args.num_envs}':<28}{b:>10.2f}")
    print(f"{'one game at a time':<28}{s:>10.2f}")
    print(f"ratio: {b / s:.1f}x")


if __name__ == "__main__":
    main()
