"""`spiral-eval`: evaluate a model offline, outside training.

    spiral-eval reasoning --model DIR --benchmark math500 --data-dir ~/benchmarks
    spiral-eval reasoning --model runs/X/checkpoints/step_000080/model --benchmark gym:basic_arithmetic:50
    spiral-eval reasoning --responses out/math500.jsonl          # grade saved responses again, no model

`reasoning` prints the protocol, then a JSON summary (avg@n accuracy with its 95% interval, pass@k), and
writes one line per problem to `--out` (default `eval/<benchmark>.jsonl`) and the summary beside it
(`.summary.json`). See `spiral_train/reasoning_eval.py` for the protocol and `spiral_train/grading.py` for
the grading rules.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from spiral_train.reasoning_eval import TEMPLATES, Protocol


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spiral-eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    r = commands.add_parser("reasoning", help="accuracy on a reasoning benchmark from local files (or generated)")
    source = r.add_argument_group("what to grade")
    source.add_argument("--model", help="a transformers model folder, a run's checkpoint model folder, or a LoRA one")
    source.add_argument("--benchmark", help="a file, a save_to_disk folder, a benchmark name, or gym:NAME[:COUNT]")
    source.add_argument("--data-dir", help="where benchmark names are looked up (math500 -> DIR/math500.jsonl, ...)")
    source.add_argument("--limit", type=int, help="only the first N problems")
    source.add_argument("--responses", help="grade the responses saved in this spiral-eval output file; no model")
    protocol = r.add_argument_group("protocol (printed and stored with the summary)")
    defaults = Protocol()
    protocol.add_argument("--template", default=defaults.template, choices=[*TEMPLATES, "chat"])
    protocol.add_argument("--temperature", type=float, default=defaults.temperature)
    protocol.add_argument("--samples", type=int, default=defaults.samples, help="answers sampled per problem (avg@n)")
    protocol.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    protocol.add_argument("--seed", type=int, default=defaults.seed)
    run = r.add_argument_group("running")
    run.add_argument("--generator", default="hf", choices=["hf", "vllm"], help="sampling backend")
    run.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    run.add_argument("--batch-size", type=int, default=64, help="answers per generate call")
    run.add_argument("--grading-timeout", type=float, default=5.0, help="seconds per math-verify comparison")
    run.add_argument("--out", help="per-problem JSONL output (default eval/<benchmark>.jsonl)")
    run.add_argument("--no-progress", dest="progress", action="store_false")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return reasoning(args)
    except (ValueError, FileNotFoundError, ImportError) as err:
        print(f"spiral-eval: error: {err}", file=sys.stderr)
        return 2


def reasoning(args: argparse.Namespace) -> int:
    from spiral_train.grading import Grader
    from spiral_train.reasoning_eval import evaluate, regrade, summarize, write_jsonl

    if args.responses:
        if args.model or args.benchmark:
            raise ValueError("--responses grades a saved file: it takes no --model or --benchmark")
        with Grader(args.grading_timeout) as grader:
            rows = regrade(args.responses, grader)
        summary = summarize(rows)
        print(json.dumps(summary, indent=1))
        return 0
    if not args.model or not args.benchmark:
        raise ValueError("spiral-eval reasoning needs --model and --benchmark (or --responses FILE)")
    protocol = Protocol(args.template, args.temperature, args.samples, args.max_new_tokens, args.seed)
    from spiral_train.reasoning_data import load_problems

    problems = load_problems(args.benchmark, args.data_dir, args.limit)
    print(f"protocol: {json.dumps(dataclasses.asdict(protocol))}")
    print(f"{len(problems)} problems from {args.benchmark}, {protocol.samples} samples each")
    generator, tokenizer = _load(args)
    with Grader(args.grading_timeout) as grader:
        rows = evaluate(problems, generator, tokenizer, protocol, grader, args.batch_size, args.progress)
    summary = summarize(rows, protocol)
    summary["benchmark"] = args.benchmark
    summary["model"] = args.model
    out = Path(args.out or Path("eval") / f"{_file_name(args.benchmark)}.jsonl")
    write_jsonl(rows, out)
    out.with_suffix(".summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    print(f"per-problem results: {out}")
    return 0


def _load(args: argparse.Namespace):
    """The model's sampler and tokenizer, loaded as the trainer loads a model (LoRA checkpoints included)."""
    from spiral_train.config import make_config
    from spiral_train.generation import make_generator
    from spiral_train.models import load_model, resolve_device

    options = {"model": args.model, "device": args.device, "generator": args.generator}
    config = make_config("tiny-cpu", {**options, "generation_batch_size": args.batch_size})
    model, tokenizer, _ = load_model(config, resolve_device(config.device), log=lambda *_: None)
    return make_generator(config, model, tokenizer), tokenizer


def _file_name(benchmark: str) -> str:
    return Path(benchmark).stem if Path(benchmark).exists() else benchmark.replace(":", "-").replace("/", "-")


if __name__ == "__main__":
    raise SystemExit(main())
