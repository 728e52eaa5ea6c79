"""`spiral-eval`: evaluate a model offline, outside training.

    spiral-eval reasoning --model DIR --benchmark math500 --data-dir ~/benchmarks
    spiral-eval reasoning --model runs/X/checkpoints/step_000080/model --benchmark gym:basic_arithmetic:50
    spiral-eval reasoning --responses out/math500.jsonl          # grade saved responses again, no model
    spiral-eval games --model runs/X/checkpoints/step_000080 --vs runs/X/checkpoints/step_000040
    spiral-eval population --run runs/X --anchors random strong

`games` plays the model against `random`, `strong` (the game's exact or scripted expert), `exploiter` (Kuhn
Poker: an exact best response to the model's measured policy) and any `--vs` models, half the games in each
seat on fixed seeds, and prints win/draw/loss/invalid rates with 95% intervals, the mean return and the game's
strategy metrics (NashConv, optimal-move rate).

`reasoning` prints the protocol, then a JSON summary (avg@n accuracy with its 95% interval, pass@k), and
writes one line per problem to `--out` and the summary beside it (`.summary.json`). See
`spiral_train/reasoning/benchmarks.py` for the protocol and `spiral_train/reasoning/grading.py` for the grading
rules.

Outputs go into the run: a model that is a run's checkpoint (`RUN/checkpoints/step_N`, or its `model/`) writes
to `RUN/eval/step_N/` (`games.json`, `<benchmark>.jsonl`), `population --run RUN` to `RUN/eval/population/`;
any other model to `eval/` in the working directory. Every input is checked before any model or heavy library
loads (paths, counts, games): a bad one stops with one line naming it and the fix, exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from spiral_train.eval.inputs import (
    check_games,
    check_population,
    check_reasoning,
    checked_game_kwargs,
    chosen_checkpoints,
    default_out,
)
from spiral_train.reasoning.protocol import TEMPLATES, Protocol

GAMES_AT_ONCE = 256
"""Games `games` and `population` play at once (the collector's batch, as `num_envs` in training)."""


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
    source.add_argument("--limit", type=int, help="only the first N problems (N >= 1)")
    source.add_argument("--responses", help="grade the responses saved in this spiral-eval output file; no model")
    protocol = r.add_argument_group("protocol (printed and stored with the summary)")
    defaults = Protocol()
    protocol.add_argument("--template", default=defaults.template, choices=[*TEMPLATES, "chat"])
    protocol.add_argument("--temperature", type=float, default=defaults.temperature)
    protocol.add_argument("--top-p", type=float, default=defaults.top_p, help="nucleus sampling (1.0: off)")
    protocol.add_argument("--top-k", type=int, default=defaults.top_k, help="the k most likely tokens only (0: all)")
    protocol.add_argument("--samples", type=int, default=defaults.samples, help="answers sampled per problem (avg@n)")
    protocol.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    protocol.add_argument("--seed", type=int, default=defaults.seed)
    run = r.add_argument_group("running")
    run.add_argument("--generator", default="hf", choices=["hf", "vllm"], help="sampling backend")
    run.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    run.add_argument("--batch-size", type=int, default=64, help="answers per generate call")
    run.add_argument(
        "--grading-timeout",
        type=float,
        default=5.0,
        help="seconds per math-verify comparison, in (0, 3600]; one that runs out is graded 'timeout'",
    )
    run.add_argument(
        "--out",
        help="per-problem JSONL output (default RUN/eval/step_N/<benchmark>.jsonl, else eval/<benchmark>.jsonl)",
    )
    run.add_argument("--no-progress", dest="progress", action="store_false")
    g = commands.add_parser("games", help="a model against opponents on the games, both seats, fixed seeds")
    g.add_argument("--model", required=True, help="a model folder, a run's checkpoint (model/), or a LoRA one")
    g.add_argument("--env-ids", nargs="+", default=["KuhnPoker-v1"], help="registered games")
    g.add_argument(
        "--env-kwargs", type=json.loads, default={}, help='game options, e.g. \'{"KuhnPoker-v1": {"num_rounds": 1}}\''
    )
    g.add_argument("--history", default="current", choices=["current", "full"], help="what each prompt shows")
    g.add_argument(
        "--opponents", nargs="+", default=["random", "strong", "exploiter"], help="random, strong, exploiter"
    )
    g.add_argument("--vs", nargs="*", default=[], metavar="MODEL", help="other models (checkpoints) as opponents")
    g.add_argument("--games", type=int, default=320, help="games per (game, opponent), half in each seat")
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--top-k", type=int, default=0, help="sample from the k most likely tokens only (0: all)")
    g.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (1.0: off)")
    g.add_argument("--max-new-tokens", type=int, help="longest answer in tokens (default 8)")
    g.add_argument("--probe-samples", type=int, default=64, help="answers per decision point for strategy metrics")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    g.add_argument("--out", help="JSON of every metric (default RUN/eval/step_N/games.json, else eval/games.json)")
    pop = commands.add_parser("population", help="a round-robin of a run's checkpoints, rated (Elo, max likelihood)")
    pop.add_argument("--run", help="a run folder: its checkpoints are the population")
    pop.add_argument("--every", type=int, default=1, help="every k-th checkpoint of --run (the last always)")
    pop.add_argument("--models", nargs="*", default=[], help="more models (folders or checkpoints)")
    pop.add_argument("--anchors", nargs="*", default=["random", "strong"], help="scripted members: random, strong")
    pop.add_argument("--env-id", default="KuhnPoker-v1")
    pop.add_argument("--env-kwargs", type=json.loads, default={}, help="game options, as for games")
    pop.add_argument("--history", default="current", choices=["current", "full"])
    pop.add_argument("--games", type=int, default=64, help="games per pair, half in each seat")
    pop.add_argument("--temperature", type=float, default=1.0)
    pop.add_argument("--seed", type=int, default=0)
    pop.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    pop.add_argument(
        "--out", help="folder for ratings.json and ratings.png (default RUN/eval/population, else eval/population)"
    )
    pop.add_argument("--no-progress", dest="progress", action="store_false")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    checks = {"reasoning": check_reasoning, "games": check_games, "population": check_population}
    commands = {"reasoning": reasoning, "games": games, "population": population}
    try:
        checks[args.command](args)  # every input, before any model or heavy library loads
        return commands[args.command](args)
    except (ValueError, FileNotFoundError, ImportError) as err:
        print(f"spiral-eval: error: {err}", file=sys.stderr)
        return 2


def reasoning(args: argparse.Namespace) -> int:
    from spiral_train.reasoning.grading import Grader

    grader = Grader(args.grading_timeout)  # checks the time-out; its child process starts at the first comparison
    if args.responses:
        from spiral_train.reasoning.data import load_responses

        load_responses(args.responses)  # every line checked before torch loads
        from spiral_train.reasoning.benchmarks import regrade, summarize

        with grader:
            rows = regrade(args.responses, grader)
        summary = summarize(rows)
        print(json.dumps(summary, indent=1))
        return 0
    protocol = Protocol(
        args.template, args.temperature, args.samples, args.max_new_tokens, args.seed, args.top_p, args.top_k
    )
    from spiral_train.reasoning.data import benchmark_name, load_problems

    problems = load_problems(args.benchmark, args.data_dir, args.limit)
    print(f"protocol: {json.dumps(dataclasses.asdict(protocol))}")
    print(f"{len(problems)} problems from {args.benchmark}, {protocol.samples} samples each")
    from spiral_train.reasoning.benchmarks import sample_and_grade, summarize, write_jsonl

    generator, tokenizer = _load(args)
    with grader:
        rows = sample_and_grade(problems, generator, tokenizer, protocol, grader, args.batch_size, args.progress)
    summary = summarize(rows, protocol)
    summary["benchmark"] = args.benchmark
    summary["model"] = args.model
    out = Path(args.out or default_out(args.model) / f"{benchmark_name(args.benchmark)}.jsonl")
    write_jsonl(rows, out)
    out.with_suffix(".summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    print(f"per-problem results: {out}")
    return 0


def games(args: argparse.Namespace) -> int:
    import torch

    from spiral_train.config.views import GenerationSettings, Sampling
    from spiral_train.eval.games import evaluate
    from spiral_train.models.loading import resolve_device
    from spiral_train.rollout.collector import Collector
    from spiral_train.rollout.policy import frozen_checkpoint_policy

    _quiet_transformers()
    game_kwargs = checked_game_kwargs(args.env_ids, args.env_kwargs, args.history)
    length = {"max_new_tokens": args.max_new_tokens} if args.max_new_tokens else {}
    sampling = Sampling(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, **length)
    device = resolve_device(args.device)

    def seat(option: str, folder: str):  # every model, the evaluated one too, frozen (LoRA merged) at --temperature
        rng = torch.Generator(device=device).manual_seed(args.seed)
        with _loading(option, folder):
            return frozen_checkpoint_policy(folder, device, rng, sampling, GenerationSettings())

    policy = seat("--model", args.model)
    others = {folder: seat("--vs", folder) for folder in args.vs}
    metrics = evaluate(
        policy,
        args.env_ids,
        [*args.opponents, *others],
        args.games,
        args.temperature,
        Collector(GAMES_AT_ONCE, game_kwargs),
        seed=args.seed,
        probe_samples=args.probe_samples,
        model_opponents=others,
    )
    print(games_table(metrics))
    out = Path(args.out or default_out(args.model) / "games.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "model": args.model,
                "games": args.games,
                "temperature": args.temperature,
                "seed": args.seed,
                "metrics": metrics,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"all metrics: {out}")
    return 0


def population(args: argparse.Namespace) -> int:
    import torch

    from spiral_train.config.views import GenerationSettings, Sampling
    from spiral_train.eval.population import elo_ratings, plot_ratings, round_robin
    from spiral_train.models.loading import resolve_device
    from spiral_train.rollout.collector import Collector, scripted
    from spiral_train.rollout.policy import frozen_checkpoint_policy

    _quiet_transformers()
    folders: dict[str, str] = {}
    steps: dict[str, int] = {}
    if args.run:
        for folder in chosen_checkpoints(Path(args.run).expanduser(), args.every):
            step = int(folder.name.removeprefix("step_"))
            folders[f"step {step}"], steps[f"step {step}"] = str(folder), step
    folders.update({model: model for model in args.models})
    game_kwargs = checked_game_kwargs([args.env_id], args.env_kwargs, args.history)
    sampling = Sampling(temperature=args.temperature)
    device = resolve_device(args.device)
    members: dict = {}
    for name, folder in folders.items():
        rng = torch.Generator(device=device).manual_seed(args.seed)
        with _loading("--run" if name in steps else "--models", folder):
            members[name] = frozen_checkpoint_policy(folder, device, rng, sampling, GenerationSettings())
    members.update({anchor: scripted(anchor) for anchor in args.anchors})
    collector = Collector(GAMES_AT_ONCE, game_kwargs)
    results = round_robin(args.env_id, members, args.games, collector, args.progress)
    ratings = elo_ratings(list(members), results)
    out = Path(args.out or (Path(args.run) / "eval" / "population" if args.run else Path("eval") / "population"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "ratings.json").write_text(
        json.dumps(
            {
                "env_id": args.env_id,
                "games_per_pair": args.games,
                "temperature": args.temperature,
                "ratings": {name: {"elo": r, "se": se, "step": steps.get(name)} for name, (r, se) in ratings.items()},
                "pairs": [dataclasses.asdict(r) for r in results],
            },
            indent=1,
        )
        + "\n"
    )
    plot_ratings(ratings, steps, str(out / "ratings.png"))
    print("| member | Elo | ± SE |\n|---|---|---|")
    for name, (rating, se) in ratings.items():
        print(f"| {name} | {rating:+.0f} | {se:.0f} |")
    print(f"ratings: {out / 'ratings.json'}, plot: {out / 'ratings.png'}")
    return 0


def games_table(metrics: dict[str, float]) -> str:
    """One row per (game, opponent): outcome rates with their 95% intervals and the mean return; then the
    strategy metrics (a theory's `strategy/...` and, for Kuhn Poker, the whole match's `match/...`)."""
    rows = [
        "| game | opponent | games | win | draw | loss | invalid | mean return |",
        "|---|---|---|---|---|---|---|---|",
    ]
    pairs = []  # (game, opponent); an opponent model's label may itself hold slashes (its path)
    for key in sorted(k for k in metrics if k.endswith("/win_rate") and "/strategy/" not in k):
        env_id = key.split("/")[1]
        pairs.append((env_id, key[len(f"eval/{env_id}/") : -len("/win_rate")]))
    for env_id, opponent in pairs:
        base = f"eval/{env_id}/{opponent}/"
        cells = [
            f"{metrics[base + r]:.1%} ({metrics[base + r + '_lo']:.1%}-{metrics[base + r + '_hi']:.1%})"
            for r in ("win_rate", "draw_rate", "loss_rate", "invalid_rate")
        ]
        rows.append(
            f"| {env_id} | {opponent} | {int(metrics[base + 'games'])} | {' | '.join(cells)} | "
            f"{metrics[base + 'mean_return']:+.3f} |"
        )
    strategy = [
        f"{k.removeprefix('eval/')}: {v:.3f}"
        for k, v in sorted(metrics.items())
        if ("/strategy/" in k or "/match/" in k) and not k.endswith(("_lo", "_hi"))
    ]
    return "\n".join(rows + strategy)


@contextlib.contextmanager
def _loading(option: str, model: str) -> Iterator[None]:
    """Loading `model`: an OSError (a hub id that cannot be fetched, a weight file that will not read) becomes one
    line naming the option, the model and the first line of the cause."""
    try:
        yield
    except OSError as err:
        cause = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"{option} {model}: could not load it ({cause}); give a model folder here, or a Hugging Face id "
            "this machine can fetch"
        ) from None


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per weight file would bury the results


def _load(args: argparse.Namespace):
    """The model's sampler and tokenizer, loaded as the trainer loads a model (LoRA checkpoints included)."""
    from spiral_train.config.run_checks import check_model
    from spiral_train.config.views import GenerationSettings, ModelSource
    from spiral_train.models.loading import load_model, resolve_device
    from spiral_train.models.lora import model_folder
    from spiral_train.rollout.generation import make_generator

    _quiet_transformers()
    folder = model_folder(args.model)
    check_model(folder)  # a mistyped path: one line, naming it
    source = ModelSource(model=folder, for_vllm=args.generator == "vllm")
    with _loading("--model", args.model):
        model, tokenizer, _ = load_model(source, resolve_device(args.device), log=lambda *_: None)
    generation = GenerationSettings(generator=args.generator, generation_batch_size=args.batch_size)
    return make_generator(generation, model, tokenizer), tokenizer


if __name__ == "__main__":
    raise SystemExit(main())
