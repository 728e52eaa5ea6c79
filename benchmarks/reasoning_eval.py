"""Throughput of `spiral-eval reasoning`, vLLM against transformers, on the same problems in one process.

Both backends run the whole evaluation (`reasoning.benchmarks.sample_and_grade`: prompts, sampling under the protocol,
grading) on the same generated problems (`gym:NAME:COUNT`, no download), repetitions interleaved, median
reported. Reported: answers per second, generated tokens per second, and the accuracy each backend got (the same
model under the same protocol: the two should agree within their intervals).

    .venv/bin/python benchmarks/reasoning_eval.py                      # the tiny model (vLLM-shaped), CPU
    .venv/bin/python benchmarks/random_model.py --out /tmp/qwen3-0.6b --hidden 1024 --layers 28 --heads 16 --kv-heads 8
    .venv/bin/python benchmarks/reasoning_eval.py --model /tmp/qwen3-0.6b --problems 128 --max-new-tokens 1024

A random-init model rarely samples its end token, so its answers run to --max-new-tokens: a clean throughput
figure. Results are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from spiral_train.config import make_config
from spiral_train.config.views import ModelSource
from spiral_train.models.loading import tiny_spec
from spiral_train.models.tiny import tiny_model_path
from spiral_train.reasoning.benchmarks import Protocol, sample_and_grade, summarize
from spiral_train.reasoning.data import load_problems
from spiral_train.reasoning.grading import Grader
from spiral_train.rollout.generation import Generation, Generator, HFGenerator
from spiral_train.rollout.generation.vllm import VLLMGenerator


class Counted:
    """A generator that counts the tokens it generates (composition: it wraps any `Generator`)."""

    def __init__(self, inner: Generator) -> None:
        self.inner = inner
        self.tokens = 0

    def generate(self, prompts: Sequence[Sequence[int]], *args, **kwargs) -> list[Generation]:
        out = self.inner.generate(prompts, *args, **kwargs)
        self.tokens += sum(len(g.token_ids) for g in out)
        return out


def run_once(generator: Generator, tokenizer, problems, protocol: Protocol, grader: Grader, batch: int):
    counted = Counted(generator)
    started = time.perf_counter()
    rows = sample_and_grade(problems, counted, tokenizer, protocol, grader, batch_size=batch, progress=False)
    elapsed = time.perf_counter() - started
    answers = len(problems) * protocol.samples
    return answers / elapsed, counted.tokens / elapsed, summarize(rows)["accuracy"]


def bench(path: Path, args, grader: Grader) -> list[tuple[str, str, str]]:
    device = torch.device(args.device)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    problems = load_problems(f"gym:{args.dataset}:{args.problems}")
    protocol = Protocol("qwen3", 0.6, args.samples, args.max_new_tokens, 0, 0.95, 0)
    name = f"{path.name} ({params:.1f}M params)"
    hf = HFGenerator(model, tokenizer, max_batch_size=args.batch)
    started = time.perf_counter()
    engine = VLLMGenerator(model, tokenizer, max_model_len=args.max_model_len, kv_cache_mb=args.kv_cache_mb)
    start_s = time.perf_counter() - started
    results: dict[str, list[tuple[float, float, float]]] = {"transformers": [], "vLLM": []}
    try:
        for generator in (hf, engine):  # warm-up
            run_once(generator, tokenizer, problems[:2], protocol, grader, args.batch)
        for _ in range(args.repeats):
            results["transformers"].append(run_once(hf, tokenizer, problems, protocol, grader, args.batch))
            engine.llm.reset_prefix_cache()
            results["vLLM"].append(run_once(engine, tokenizer, problems, protocol, grader, args.batch))
    finally:
        engine.close()
    rows = []
    base = statistics.median(r[1] for r in results["transformers"])
    for backend, runs in results.items():
        answers_s = statistics.median(r[0] for r in runs)
        tokens_s = statistics.median(r[1] for r in runs)
        accuracy = statistics.fmean(r[2] for r in runs)
        ratio = f" ({tokens_s / base:.1f}x)" if backend == "vLLM" else ""
        rows.append((name, f"{backend} answers/s", f"{answers_s:,.1f}"))
        rows.append((name, f"{backend} tokens/s", f"{tokens_s:,.0f}{ratio}"))
        rows.append((name, f"{backend} accuracy", f"{accuracy:.3f}"))
    rows.append((name, "vLLM engine start", f"{start_s:.1f} s"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[], help="more model folders (default: tiny only)")
    parser.add_argument("--no-tiny", action="store_true", help="leave the tiny model out")
    parser.add_argument("--dataset", default="basic_arithmetic", help="a reasoning-gym dataset")
    parser.add_argument("--problems", type=int, default=32)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=128, help="answers per generation call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kv-cache-mb", type=int, default=None, help="vLLM KV cache (default: 256 on CPU)")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--device", default="cpu", help="where the transformers backend runs (cpu, cuda)")
    args = parser.parse_args()
    paths = (
        []
        if args.no_tiny
        else [tiny_model_path(tiny_spec(ModelSource.from_config(make_config("tiny-cpu", {"generator": "vllm"}))))]
    )
    rows = []
    with Grader() as grader:
        for path in [*paths, *map(Path, args.model)]:
            rows += bench(Path(path), args, grader)
    print(
        f"\ngym:{args.dataset}:{args.problems}, {args.samples} samples each, at most {args.max_new_tokens} new tokens, "
        f"temperature 0.6, top-p 0.95, {args.repeats} repeats (median), torch threads {torch.get_num_threads()}"
    )
    width = max(len(r[0]) for r in rows)
    for model_name, what, value in rows:
        print(f"{model_name:<{width}}  {what:<24}{value:>18}")


if __name__ == "__main__":
    main()
