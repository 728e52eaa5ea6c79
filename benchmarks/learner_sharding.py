"""Memory and update time of the Ray learner group per rank: replicated ranks ("ddp") against FSDP ("fsdp").

Both strategies run one after another in one invocation, on the same model and the same synthetic batch
(random prompt and response tokens, advantages +-1), each on a fresh local Ray cluster with `--ranks`
learner actors. Reported per strategy: the median wall seconds of an update (after one warm-up update, the
group's weight gather and copy to the driver included), and per rank the bytes it holds in parameters,
gradients and Adam moments (its shards under FSDP, counted from the tensors themselves, so exact) and its
peak RSS (ru_maxrss, which also counts the whole model that every rank loads on CPU before sharding).

    .venv/bin/python benchmarks/random_model.py --out /tmp/qwen3-30m --hidden 512 --layers 8 --heads 8
    .venv/bin/python benchmarks/learner_sharding.py --model /tmp/qwen3-30m
    .venv/bin/python benchmarks/learner_sharding.py --model DIR --device cuda --ranks 8   # a GPU node
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import torch

from spiral_train.rollout.collector import Turn


def turns(count: int, prompt_len: int, response_len: int, vocab: int, seed: int = 0) -> list[Turn]:
    rng = random.Random(seed)
    old = -torch.log(torch.tensor(float(vocab))).item()  # about a random model's logprob: ratios near 1
    return [
        Turn(
            "KuhnPoker-v1",
            f"player_{i % 2}",
            i // 2,
            [rng.randrange(3, vocab) for _ in range(prompt_len)],
            [rng.randrange(3, vocab) for _ in range(response_len)],
            [old] * response_len,
            valid=True,
            truncated=False,
            advantage=rng.choice((-1.0, 1.0)),
        )
        for i in range(count)
    ]


def held_bytes(rank) -> dict:
    """Runs inside a learner rank (through Ray's __ray_call__): what this rank holds, by kind."""
    import resource

    def local(t: torch.Tensor) -> torch.Tensor:
        return t.to_local() if hasattr(t, "to_local") else t  # an FSDP DTensor: this rank's shard

    params = [p for p in rank.model.parameters()]
    state = [v for s in rank.learner.optimizer.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
    size = lambda ts: sum(local(t).numel() * local(t).element_size() for t in ts)  # noqa: E731
    return {
        "params_mb": size(params) / 2**20,
        "grads_mb": size([p.grad for p in params if p.grad is not None]) / 2**20,
        "adam_mb": size(state) / 2**20,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(strategy: str, args: argparse.Namespace) -> dict:
    import ray

    from spiral_train.config import make_config
    from spiral_train.config.views import LearnerRankSettings, ModelSource, RaySettings
    from spiral_train.distributed.learner_group import LearnerGroup
    from spiral_train.distributed.local_ray import init_local_ray
    from spiral_train.learner import Learner, LearnerSettings
    from spiral_train.models.loading import load_model

    overrides = {
        "model": args.model,
        "ray_workers": 1,
        "ray_learners": args.ranks,
        "ray_learner_strategy": strategy,
        "ray_learner_cpus": args.threads,
        "ray_learner_gpus": 1.0 if args.device == "cuda" else 0.0,
        "ray_worker_gpus": 1.0 if args.device == "cuda" else 0.0,  # none start, but a CUDA config must ask
        "device": args.device,
        "micro_batch_size": args.micro_batch,
        "max_new_tokens": args.response_len,
    }
    config = make_config("tiny-cpu", overrides)
    model, tokenizer, _ = load_model(ModelSource.from_config(config), torch.device("cpu"), log=lambda *_: None)
    state = Learner(
        model, LearnerSettings.from_config(config), torch.device("cpu"), tokenizer.pad_token_id
    ).state_dict()
    batch = turns(args.turns, args.prompt_len, args.response_len, len(tokenizer))
    init_local_ray(num_cpus=args.ranks * args.threads + 1)
    try:
        group = LearnerGroup(
            RaySettings.from_config(config),
            LearnerRankSettings.from_config(config, args.model),
            model,
            state,
            version=0,
        )
        times = []
        for _ in range(args.updates + 1):
            t0 = time.perf_counter()
            group.update(batch)
            times.append(time.perf_counter() - t0)
        ranks = ray.get([r.__ray_call__.remote(held_bytes) for r in group.ranks])
        group.shutdown()
    finally:
        ray.shutdown()
    return {"strategy": strategy, "update_s": statistics.median(times[1:]), "ranks": ranks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a model folder (benchmarks/random_model.py builds one)")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (and Ray CPUs) per rank")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--turns", type=int, default=16)
    parser.add_argument("--prompt-len", type=int, default=96)
    parser.add_argument("--response-len", type=int, default=32)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--updates", type=int, default=3)
    args = parser.parse_args()
    results = [measure(strategy, args) for strategy in ("ddp", "fsdp")]
    print(json.dumps(results, indent=1))
    base = results[0]
    print(f"\n{args.ranks} ranks, {args.turns} turns of {args.prompt_len}+{args.response_len} tokens, {args.device}")
    print("strategy | update s | per rank: params MB | grads MB | Adam MB | held MB | peak RSS MB (rank 0)")
    for r in results:
        rank0 = r["ranks"][0]
        held = rank0["params_mb"] + rank0["grads_mb"] + rank0["adam_mb"]
        print(
            f"{r['strategy']:>8} | {r['update_s']:.2f} ({r['update_s'] / base['update_s']:.2f}x) | "
            f"{rank0['params_mb']:.0f} | {rank0['grads_mb']:.0f} | {rank0['adam_mb']:.0f} | {held:.0f} | "
            f"{rank0['peak_rss_mb']:.0f}"
        )


if __name__ == "__main__":
    main()
