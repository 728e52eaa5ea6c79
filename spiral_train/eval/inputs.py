"""What `spiral-eval` is given, checked before any model or heavy library loads (paths, counts, games: a bad
input raises a one-line error naming it and the fix), and where its outputs go."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any


def check_reasoning(args: argparse.Namespace) -> None:
    """`reasoning`'s inputs: the mode (saved responses, or a model and a benchmark), the paths and the numbers."""
    if args.responses:
        if args.model or args.benchmark:
            raise ValueError("--responses grades a saved file: it takes no --model or --benchmark")
        return  # the file itself is checked line by line as it is read (`data.load_responses`), before grading
    if not args.model or not args.benchmark:
        raise ValueError("spiral-eval reasoning needs --model and --benchmark (or --responses FILE)")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit {args.limit}: give a number of problems >= 1, or leave it out for all of them")
    _at_least(samples=(args.samples, 1), max_new_tokens=(args.max_new_tokens, 1), batch_size=(args.batch_size, 1))
    _sampling(args.temperature, args.top_k, args.top_p)
    if args.data_dir is not None and not Path(args.data_dir).expanduser().is_dir():
        raise FileNotFoundError(f"--data-dir {args.data_dir}: no such folder; give the folder of the benchmark files")
    _check_out(args.out, folder=False)
    _check_models("--model", [args.model])
    missing = missing_reasoning_packages(args)
    if missing:
        raise ImportError(missing[0])


def missing_reasoning_packages(args: argparse.Namespace, installed: Callable[[str], bool] | None = None) -> list[str]:
    """What `reasoning` with these arguments needs and this machine lacks, one line each (as spiral-train's
    `run_checks.missing_extras`): math-verify to grade, vLLM for `--generator vllm`, reasoning-gym for gym:."""
    from spiral_train.config.run_checks import missing_packages
    from spiral_train.config.schema import EVAL_INSTALL_HINT, VLLM_INSTALL_HINT

    gym = bool(args.benchmark) and args.benchmark.startswith("gym:")
    needs = (
        (True, "math_verify", "grading", EVAL_INSTALL_HINT),
        (args.generator == "vllm", "vllm", "--generator vllm", VLLM_INSTALL_HINT),
        (gym, "reasoning_gym", f"--benchmark {args.benchmark}", EVAL_INSTALL_HINT),
    )
    return missing_packages(needs, installed)


def check_games(args: argparse.Namespace) -> None:
    """`games`' inputs: the opponents, the numbers, the games and their options, the output and every model."""
    unknown = sorted(set(args.opponents) - {"random", "strong", "exploiter"})
    if unknown:
        raise ValueError(f"--opponents {unknown}: choose among random, strong, exploiter (models go in --vs)")
    named = [vs for vs in args.vs if vs in {"random", "strong", "exploiter"} and not Path(vs).exists()]
    if named:
        raise ValueError(f"--vs {named[0]}: a named opponent goes in --opponents; --vs takes model folders")
    _at_least(games=(args.games, 1), probe_samples=(args.probe_samples, 0))
    if args.max_new_tokens is not None:
        _at_least(max_new_tokens=(args.max_new_tokens, 1))
    _sampling(args.temperature, args.top_k, args.top_p)
    checked_game_kwargs(args.env_ids, args.env_kwargs, args.history)
    _check_out(args.out, folder=False)
    _check_models("--model", [args.model])
    _check_models("--vs", args.vs)


def check_population(args: argparse.Namespace) -> None:
    """`population`'s inputs: the anchors, the members (a run's checkpoints, models), the numbers, the game."""
    unknown = sorted(set(args.anchors) - {"random", "strong"})
    if unknown:
        raise ValueError(f"--anchors {unknown}: choose among random, strong")
    if not args.run and not args.models:
        raise ValueError(
            "spiral-eval population rates models: give --run RUN (its checkpoints) or --models DIR ...; "
            "the anchors alone have nothing to rate"
        )
    if args.every < 1:
        raise ValueError(f"--every {args.every}: give k >= 1 (every k-th checkpoint of --run)")
    _at_least(games=(args.games, 1))
    _sampling(args.temperature, 0, 1.0)
    if args.run:
        run = Path(args.run).expanduser()
        if not run.is_dir():
            raise FileNotFoundError(f"--run {args.run}: no such folder; give a run folder (runs/X)")
        if not run_checkpoints(run):
            raise FileNotFoundError(f"--run {args.run} has no checkpoints/step_N folders: give a run folder")
    _check_models("--models", args.models)
    members = len(chosen_checkpoints(Path(args.run).expanduser(), args.every)) if args.run else 0
    if members + len(set(args.models)) + len(set(args.anchors)) < 2:
        raise ValueError("a population needs two members or more: give more --models, or --anchors random strong")
    checked_game_kwargs([args.env_id], args.env_kwargs, args.history)
    _check_out(args.out, folder=True)


def checked_game_kwargs(
    env_ids: list[str], env_kwargs: dict[str, dict[str, Any]], history: str
) -> dict[str, dict[str, Any]]:
    """Each game's options, checked: an unknown id or option raises `ConfigError` (a ValueError), reported by main."""
    from spiral_train.config.run_checks import check_games as check_game_options
    from spiral_train.config.schema import game_options

    unknown = sorted(set(env_kwargs) - set(env_ids))
    if unknown:
        raise ValueError(f"--env-kwargs names {unknown}, which are not among the games {env_ids}")
    game_kwargs = game_options(env_ids, env_kwargs, history)
    check_game_options(game_kwargs)
    return game_kwargs


def run_checkpoints(run: Path) -> list[Path]:
    """A run folder's checkpoints (`checkpoints/step_N`), oldest first."""
    return sorted(f for f in (run / "checkpoints").glob("step_*") if f.is_dir() and f.name[5:].isdecimal())


def chosen_checkpoints(run: Path, every: int) -> list[Path]:
    """`population`'s members from a run: every `every`-th checkpoint, oldest first, and the last always."""
    found = run_checkpoints(run)
    chosen = found[::every]
    return chosen + ([] if not found or found[-1] in chosen else [found[-1]])


def checkpoint_of(model: str) -> tuple[Path, str] | None:
    """(the run, `step_N`) where `model` is a run's checkpoint (`RUN/checkpoints/step_N`, or its `model/`)."""
    path = Path(model).expanduser()
    step = path.parent if path.name == "model" else path
    if step.name.startswith("step_") and step.name[5:].isdecimal() and step.parent.name == "checkpoints":
        return step.parent.parent, step.name
    return None


def default_out(model: str) -> Path:
    """Where `games` and `reasoning` write when no `--out` is given: `RUN/eval/step_N` for a run's checkpoint,
    else `eval` in the working directory."""
    found = checkpoint_of(model)
    return found[0] / "eval" / found[1] if found else Path("eval")


def _at_least(**counts: tuple[int, int]) -> None:
    """Each option's (value, least): a whole number below its least is refused, naming the option."""
    for name, (value, least) in counts.items():
        if value < least:
            raise ValueError(f"--{name.replace('_', '-')} {value}: give a whole number >= {least}")


def _sampling(temperature: float, top_k: int, top_p: float) -> None:
    """A temperature that is a finite number >= 0, a top-k >= 0 and a top-p in (0, 1]."""
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"--temperature {temperature}: give a finite number >= 0")
    if top_k < 0:
        raise ValueError(f"--top-k {top_k}: give a whole number >= 0 (0: all tokens)")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"--top-p {top_p}: give a number in (0, 1] (1.0: off)")


def _check_out(out: str | None, folder: bool) -> None:
    """An `--out` that names a file where a folder is wanted, or a folder where a file is: one line."""
    if out is None:
        return
    path = Path(out).expanduser()
    if folder and path.exists() and not path.is_dir():
        raise ValueError(f"--out {out} is a file: give a folder for ratings.json and ratings.png")
    if not folder and path.is_dir():
        raise ValueError(f"--out {out} is a folder: give a file name, e.g. {Path(out) / 'results.json'}")


def _check_models(option: str, paths: list[str]) -> None:
    """Each model an option names exists and holds a model (config.json, or a LoRA adapter's), checked before
    any is loaded; a run's checkpoint that is gone is named with the steps its run still holds."""
    from spiral_train.config.run_checks import check_model

    for path in paths:
        folder = Path(path).expanduser()
        found = checkpoint_of(path)
        if found and not folder.exists():
            run = found[0]
            held = [f.name for f in run_checkpoints(run)]
            if not held:
                raise FileNotFoundError(
                    f"{option} {path}: no such checkpoint, and {run / 'checkpoints'} holds none; give a run's "
                    "checkpoint (runs/X/checkpoints/step_N) or a model folder"
                )
            raise FileNotFoundError(
                f"{option} {path}: no such checkpoint; {run / 'checkpoints'} holds {', '.join(held)} "
                "(keep_checkpoints prunes older ones): give one of those"
            )
        try:
            check_model(path)
        except ValueError as err:
            if folder.exists():
                raise ValueError(f"{option} {path}: {err}") from None
            raise FileNotFoundError(f"{option} {path}: {_NO_SUCH_FOLDER}") from None
        if not folder.exists() and (folder.is_absolute() or (folder.parent.is_dir() and str(folder.parent) != ".")):
            raise FileNotFoundError(f"{option} {path}: {_NO_SUCH_FOLDER}")  # a path, not a hub id


_NO_SUCH_FOLDER = "no such folder; give a run's checkpoint (runs/X/checkpoints/step_N) or a model folder"
