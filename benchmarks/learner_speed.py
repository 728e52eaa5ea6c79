"""The learner's update time on turns of mixed lengths, this tree against another, side by side.

What the update of issue 26 changed for speed: micro-batches bucketed by length (after a random shuffle, each
micro-batch was padded to its longest turn), and `token_logprobs` over the real response tokens only, in
chunks sized by device. This times `Learner.update` on the same random model and the same turns under two
source trees, alternating runs so that a noisy machine weighs on both alike:

    git worktree add /tmp/before a7151d9
    python benchmarks/learner_speed.py --other /tmp/before          # this tree vs the commit before the change

The model is a random Qwen3 with the real vocabulary (151,936) and a small width, so that the output head and
the logits weigh as they do at scale; the turns' prompt and answer lengths are drawn like a Kuhn Poker run's
with full history (prompts of 300-1,200 tokens, answers of 8-512). Each run is its own process (`--one`),
printing the update's seconds; the table gives the median per tree and the ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one(args: argparse.Namespace) -> None:
    """One timed update, in this process, with whatever `spiral_train` the path gives."""
    import time

    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from spiral_train.learner import Learner, LearnerSettings
    from spiral_train.rollout.records import Turn

    torch.manual_seed(0)
    heads = max(1, args.hidden // 64)
    config = Qwen3Config(
        vocab_size=151_936,
        hidden_size=args.hidden,
        intermediate_size=3 * args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        head_dim=64,
        tie_word_embeddings=True,
        max_position_embeddings=4096,
    )
    model = Qwen3ForCausalLM(config)
    rng = random.Random(0)
    turns = []
    for i in range(args.turns):
        prompt = [rng.randrange(1000, 150_000) for _ in range(rng.randrange(300, 1200))]
        answer = [rng.randrange(1000, 150_000) for _ in range(rng.choice([8, 16, 32, 64, 128, 256, 512]))]
        turn = Turn("KuhnPoker-v1", "player_0", i, prompt, answer, [-1.0] * len(answer), True, False)
        turn.advantage = rng.choice([-1.0, 1.0])
        turns.append(turn)
    values = dict(
        lr=1e-6, adam_betas=(0.9, 0.95), weight_decay=0.0, lr_schedule="constant", warmup_steps=0, steps=10,
        num_epochs=1, micro_batch_size=args.micro_batch, clip_eps=0.2, kl_coef=0.0, loss_aggregation="token_mean",
        max_grad_norm=1.0, max_new_tokens=512, temperature=1.0, top_k=0, top_p=1.0, bf16=False, seed=0,
    )  # fmt: skip
    names = {f.name for f in dataclasses.fields(LearnerSettings)}
    settings = LearnerSettings(**{k: v for k, v in values.items() if k in names})
    learner = Learner(model, settings, torch.device("cpu"), pad_id=0)
    learner.update(turns[: args.micro_batch])  # warm-up: allocator, AdamW's moments
    started = time.perf_counter()
    learner.update(turns)
    print(json.dumps({"update_s": time.perf_counter() - started}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--other", required=True, help="the other source tree (e.g. a worktree of an older commit)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--turns", type=int, default=32)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args)
        return
    trees = {"this tree": str(ROOT), "other": str(Path(args.other).resolve())}
    times: dict[str, list[float]] = {name: [] for name in trees}
    flags = ["--hidden", str(args.hidden), "--layers", str(args.layers), "--turns", str(args.turns)]
    flags += ["--micro-batch", str(args.micro_batch), "--other", args.other, "--one"]
    for rep in range(args.reps):
        for name, tree in trees.items():
            env = {**os.environ, "PYTHONPATH": tree}  # this script, importing that tree's spiral_train
            out = subprocess.run([sys.executable, __file__, *flags], env=env, capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(f"{name}: {out.stderr[-2000:]}")
            seconds = json.loads(out.stdout.strip().splitlines()[-1])["update_s"]
            times[name].append(seconds)
            print(f"  rep {rep + 1}, {name}: {seconds:.2f} s", flush=True)
    this, other = statistics.median(times["this tree"]), statistics.median(times["other"])
    print(f"\n| tree | update of {args.turns} turns, median of {args.reps} (s) |\n|---|---|")
    print(f"| this tree | {this:.2f} |\n| {args.other} | {other:.2f} |\n\nratio (other / this): {other / this:.2f}x")


if __name__ == "__main__":
    main()
