"""`spiral-train`: every `TrainConfig` option as a flag, YAML configs, presets, resume, and plots.

spiral-train                                  # the tiny default: Kuhn Poker on CPU, ~10 min
spiral-train --preset paper-qwen3-4b --model /models/Qwen3-4B-Base
spiral-train --config my.yaml --rae none --seed 1
spiral-train --resume runs/20261125-120000     # continue a run where its last checkpoint left it
spiral-train plot runs/20261125-120000         # writes curves.png into the run folder
spiral-train plan --preset paper-qwen3-4b --devices 8x80GB   # memory per device; exit 0 if it fits, 2 if not
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from spiral_train.config import PRESETS, ConfigError, TrainConfig, load_yaml, make_config
from spiral_train.config.help import HelpFormatter, metavar, option_groups, show_default
from spiral_train.config.run_checks import check_training_start


def _parse_value(text: str) -> Any:
    """Flags take YAML scalars and lists: 1e-6, true, null, [KuhnPoker-v1, TicTacToe-v0]."""
    return yaml.safe_load(text)


def build_parser() -> argparse.ArgumentParser:
    """Every `TrainConfig` field as a flag, grouped as the dataclass groups them, its docstring as its help."""
    parser = argparse.ArgumentParser(
        prog="spiral-train",
        usage="spiral-train [plot RUN_DIR | plan] [--preset P] [--config FILE] [--resume RUN_DIR] [--OPTION VALUE ...]",
        description="Self-play RL with Role-conditioned Advantage Estimation on spiral_envs games. Values are YAML "
        "(1e-6, true, null, [a, b]); flags override --config, which overrides --preset. Details: docs/training.md.",
        epilog="spiral-train plot RUN_DIR draws curves.png; spiral-train plan [OPTIONS] prints the memory plan "
        "(exit 0: fits, 2: does not).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--preset", default="tiny-cpu", help=f"one of {', '.join(PRESETS)} [tiny-cpu]")
    parser.add_argument("--config", metavar="FILE", help="YAML file of option: value")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    parser.add_argument("--dry-run", action="store_true", help="print the memory plan and exit; train nothing")
    types = get_type_hints(TrainConfig)
    defaults = TrainConfig()
    for heading, fields in option_groups():
        group = parser.add_argument_group(heading)
        for name, doc in fields:
            flag = "--" + name.replace("_", "-")
            annotation = types[name]
            help_text = f"{doc} [{show_default(getattr(defaults, name))}]".replace("%", "%%")
            if annotation is bool:
                group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
                continue
            many = get_origin(annotation) in (list, tuple) or _is_optional_list(annotation)
            group.add_argument(
                flag,
                dest=name,
                nargs="+" if many else None,
                type=_parse_value,
                default=None,
                metavar=metavar(annotation),
                help=help_text,
            )
    return parser


def config_from_args(args: argparse.Namespace) -> tuple[TrainConfig, str | None, bool]:
    overrides: dict[str, Any] = {}
    run_dir = None
    resume = False
    preset = args.preset
    if args.resume:
        run_dir = args.resume
        resume = True
        overrides.update(_saved_config(run_dir))
        preset = "tiny-cpu"  # the saved config is complete
    if args.config:
        overrides.update(load_yaml(args.config))
    for f in dataclasses.fields(TrainConfig):
        value = getattr(args, f.name)
        if value is not None:
            annotation = get_type_hints(TrainConfig)[f.name]
            if (
                isinstance(value, list)
                and get_origin(annotation) not in (list, tuple)
                and not _is_optional_list(annotation)
            ):
                value = value[0]
            overrides[f.name] = value
    config = make_config(preset, overrides)
    return config, run_dir or config.run_dir, resume


def _saved_config(run_dir: str) -> dict[str, Any]:
    """The options a run folder's config.yaml saved (`--resume`); a damaged one is a `ConfigError` naming it."""
    from spiral_train.run_folder import read_saved_config

    return read_saved_config(Path(run_dir))


def _is_optional_list(annotation: Any) -> bool:
    return any(get_origin(a) is list for a in get_args(annotation))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "plot":
        from spiral_train.plot import main as plot_main

        return plot_main(argv[1:])
    planning = bool(argv) and argv[0] == "plan"
    if argv and argv[0] in ("train", "plan"):
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    try:
        config, run_dir, resume = config_from_args(args)
    except ConfigError as err:
        print(f"spiral-train: error: {err}", file=sys.stderr)
        return 2
    if planning or args.dry_run:
        return print_plan(config)
    if config.memory_check and not memory_check(config):
        return 2
    from spiral_train.checkpoint import RunFolderError
    from spiral_train.plot import plot_run
    from spiral_train.run_folder import new_run_dir
    from spiral_train.trainer import Trainer

    path = Path(run_dir) if run_dir else new_run_dir()
    try:
        check_training_start(config, path)
    except ConfigError as err:
        print(f"spiral-train: error: {err}", file=sys.stderr)
        return 2
    existed = path.exists()
    print(f"run folder: {path}")
    try:
        trainer = Trainer(config, path, resume=resume)
    except (
        OSError,
        RunFolderError,
    ) as err:  # a file that will not read or write; a checkpoint refused, a folder in use
        if not existed and path.is_dir() and not any(path.iterdir()):
            path.rmdir()  # leave no empty run folder behind
        if isinstance(err, OSError):
            err = start_error(err, path, config.model, resume)
        print(f"spiral-train: error: {err}", file=sys.stderr)
        return 2
    try:
        trainer.run()
    except RuntimeError as err:
        from spiral_train.distributed.messages import RunStopped

        if not isinstance(err, RunStopped):
            raise
        print(f"spiral-train: error: {err}", file=sys.stderr)
        return 1
    png = plot_run(path)
    print(f"curves: {png}")
    summary = _final_summary(path)
    if summary:
        print(json.dumps(summary, indent=1))
    return 0


def start_error(err: OSError, run_dir: Path, model: str | None, resume: bool) -> str:
    """One line for an `OSError` raised while a run starts. One that names a file (a checkpoint's state, a
    run-folder file that cannot be written) blames that file; one that names none is the model loader's
    (transformers names the folder in its message), blamed on the model the run loads."""
    text = str(err).strip()
    first_line = text.splitlines()[0] if text else type(err).__name__
    if err.filename:
        reason = err.strerror or first_line
        inside = Path(err.filename).resolve().is_relative_to(run_dir.resolve())
        if isinstance(err, PermissionError):
            fix = "make it writable, or give --run-dir another folder" if inside else "make it readable"
        elif resume and inside:
            fix = f"the run folder {run_dir} is incomplete; resume from an intact copy, or start a new --run-dir"
        else:
            fix = "check the path"
        return f"{err.filename}: {reason}; {fix}"
    if resume and (str(run_dir) in first_line or str(run_dir.resolve()) in first_line):  # a checkpoint's file
        return f"could not load the model of the last checkpoint in {run_dir}: {first_line}"
    source = f"--model {model or 'the tiny model'}" + (f", or the last checkpoint in {run_dir}" if resume else "")
    return f"could not load the model ({source}): {first_line}"


def print_plan(config: TrainConfig) -> int:
    """`spiral-train plan` and `--dry-run`: the table on stdout; 0 when the run fits, 2 when not (or unplannable)."""
    from spiral_train.plan import PlanError, plan_run

    try:
        plan = plan_run(config)
    except PlanError as err:
        print(f"spiral-train: error: no memory plan: {err}", file=sys.stderr)
        return 2
    print(plan.table())
    return 0 if plan.fits else 2


def memory_check(config: TrainConfig) -> bool:
    """At start, before anything loads: False (and the plan on stderr) when the run cannot fit its devices. A
    plan that cannot be made (a model config not readable here) is reported and the run goes on."""
    from spiral_train.plan import PlanError, plan_run

    try:
        plan = plan_run(config)
    except PlanError as err:
        print(f"spiral-train: memory plan skipped: {err}", file=sys.stderr)
        return True
    if plan.fits:
        return True
    print(plan.table(), file=sys.stderr)
    print(
        "spiral-train: error: this run does not fit its devices (table above); use one of the options listed, "
        "or --no-memory-check to start it anyway",
        file=sys.stderr,
    )
    return False


def _final_summary(run_dir: Path) -> dict[str, float]:
    from spiral_train.metrics import read_metrics

    records = [r for r in read_metrics(run_dir) if any(k.startswith("eval/") for k in r)]
    if not records:
        return {}
    first, last = records[0], records[-1]
    return {
        f"{k} (step {first['step']} -> {last['step']})": round(last[k] - first.get(k, 0.0), 4)
        for k in last
        if k.endswith("win_rate")
    } | {"final " + k: v for k, v in last.items() if k.startswith("eval/")}


if __name__ == "__main__":
    raise SystemExit(main())
