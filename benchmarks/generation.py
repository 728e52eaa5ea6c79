"""Generated tokens per second of the vLLM backend against the transformers backend, and what a weight sync costs.

Both backends answer the same batch of Kuhn Poker opening prompts (the trainer's real prompts) with the same
number of new tokens, in one process, repetitions interleaved, median reported. vLLM's prefix cache is reset
before each of its repetitions, as a weight sync does at the start of every training step. A weight sync is
`VLLMGenerator.sync_weights()`: the learner's whole state dict into the engine (in memory: the default, the
engine in this process; from disk: what an engine in another process needs).

    .venv/bin/python benchmarks/generation.py                             # the tiny model --generator vllm trains
    .venv/bin/python benchmarks/random_model.py --out /tmp/qwen3-30m --hidden 512 --layers 8 --heads 8
    .venv/bin/python benchmarks/generation.py --model /tmp/qwen3-30m     # add a bigger random-init model

A random-init model rarely samples its end token, so its answers all run to --max-new-tokens: a clean
throughput figure. Figures of a run are in README.md ("Speed").
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import spiral_envs
from spiral_train.config import make_config
from spiral_train.config.views import ModelSource
from spiral_train.models.loading import tiny_spec
from spiral_train.models.tiny import tiny_model_path
from spiral_train.rollout.generation import HFGenerator
from spiral_train.rollout.generation.vllm import VLLMGenerator


def prompts_for(tokenizer, n: int) -> list[list[int]]:
    env = spiral_envs.make("KuhnPoker-v1")
    out = []
    for seed in range(n):
        env.reset(seed=seed)
        out.append(
            tokenizer(
                spiral_envs.render_prompt("qwen3", str(env.observe(env.agent_selection))), add_special_tokens=False
            )
        )
    return [p.input_ids for p in out]


def tokens_per_second(generator, prompts, max_new_tokens: int, seed: int, before=None) -> float:
    if before is not None:
        before()
    rng = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    gens = generator.generate(prompts, temperature=1.0, max_new_tokens=max_new_tokens, generator=rng)
    elapsed = time.perf_counter() - started
    return sum(len(g.token_ids) for g in gens) / elapsed


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def bench(path: Path, args) -> list[tuple[str, str, str]]:
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    prompts = prompts_for(tokenizer, args.prompts)
    mean_prompt = sum(map(len, prompts)) / len(prompts)
    name = f"{path.name} ({params:.1f}M params, {len(prompts)} prompts of ~{mean_prompt:.0f} tokens)"
    hf = HFGenerator(model, tokenizer, max_batch_size=args.prompts)
    started = time.perf_counter()
    engine = VLLMGenerator(model, tokenizer, max_model_len=1024, kv_cache_mb=args.kv_cache_mb)
    start_s = time.perf_counter() - started
    try:
        tokens_per_second(hf, prompts, args.max_new_tokens, 0)  # warm-up, both
        tokens_per_second(engine, prompts, args.max_new_tokens, 0)
        hf_rates, vllm_rates = [], []
        for r in range(args.repeats):
            hf_rates.append(tokens_per_second(hf, prompts, args.max_new_tokens, r))
            reset = engine.llm.reset_prefix_cache
            vllm_rates.append(tokens_per_second(engine, prompts, args.max_new_tokens, r, before=reset))
        sync_ms = median_ms(engine.sync_weights, args.repeats)
        engine.sync_from_disk, engine._weights_dir = True, Path(os.environ.get("TMPDIR", "/tmp")) / "spiral-bench-w"
        disk_ms = median_ms(engine.sync_weights, args.repeats)
    finally:
        engine.close()
    hf_tps, vllm_tps = statistics.median(hf_rates), statistics.median(vllm_rates)
    return [
        (name, "transformers tokens/s", f"{hf_tps:,.0f}"),
        (name, "vLLM tokens/s", f"{vllm_tps:,.0f} ({vllm_tps / hf_tps:.1f}x)"),
        (name, "vLLM engine start", f"{start_s:.1f} s"),
        (name, "weight sync, in memory", f"{sync_ms:.0f} ms"),
        (name, "weight sync, from disk", f"{disk_ms:.0f} ms"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[], help="more model folders (default: tiny only)")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kv-cache-mb", type=int, default=256)
    args = parser.parse_args()
    tiny = tiny_model_path(tiny_spec(ModelSource.from_config(make_config("tiny-cpu", {"generator": "vllm"}))))
    rows = []
    for path in [tiny, *map(Path, args.model)]:
        rows += bench(Path(path), args)
    print(
        f"\n{args.max_new_tokens} new tokens max, temperature 1, {args.repeats} repeats (median), "
        f"torch threads {torch.get_num_threads()}"
    )
    width = max(len(r[0]) for r in rows)
    for model_name, what, value in rows:
        print(f"{model_name:<{width}}  {what:<24}{value:>18}")


if __name__ == "__main__":
    main()
