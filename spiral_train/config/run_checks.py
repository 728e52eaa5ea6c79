"""Checks of a `TrainConfig` against this machine, once a run, before anything loads: the games exist and build
with their options, the model and opponent folders hold what they should (a readable config.json, a chat
template for `template: chat`, room for `max_new_tokens`), the reasoning benchmark files exist, the device and
the extras an option needs are there. `make_config` runs them (the `spiral-train` start); a
`dataclasses.replace` of a checked config, in a Ray actor for instance, does not run them again.
`check_training_start` checks what only a run that trains here needs: the device, and the run folder.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import spiral_envs
from spiral_train.config.schema import (
    EVAL_INSTALL_HINT,
    LORA_INSTALL_HINT,
    OPPONENTS,
    VLLM_INSTALL_HINT,
    ConfigError,
)

if TYPE_CHECKING:
    from spiral_train.config.schema import TrainConfig

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
"""What a Hugging Face model id looks like ("Qwen/Qwen3-4B-Base"): a `model` that is neither this nor a folder
here is a mistyped path."""

_MODEL_FILES = ("config.json", "adapter_config.json")
_CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")


def check_run(c: TrainConfig) -> None:
    """Raise `ConfigError` naming the first option this machine cannot honour, and the fix."""
    check_model(c.model)
    for env_id in [*c.env_ids, *(c.eval_env_ids or [])]:
        _check_env_id(env_id)
    if c.opponent not in OPPONENTS:
        if not Path(c.opponent).is_dir():
            raise ConfigError(
                f"opponent={c.opponent!r} must be one of {list(OPPONENTS)} or an existing checkpoint folder"
            )
        if _model_folder(Path(c.opponent)) is None:
            raise ConfigError(
                f"opponent={c.opponent!r} is a folder but no checkpoint (no config.json, nor adapter_config.json, "
                f"there or in its model/ folder); give a run's checkpoints/step_N folder, or one of {list(OPPONENTS)}"
            )
    check_games(c.game_kwargs())
    _check_model_fits(c)
    _check_benchmarks(c)
    check_extras(c)


def missing_extras(c: TrainConfig, installed: Callable[[str], bool] | None = None) -> list[str]:
    """One line per package an option of `c` needs and this machine lacks (`installed(module)` says whether a
    module can be imported; by default `importlib.util.find_spec`): the option, the package and how to get it."""
    needs = (
        (c.generator == "vllm", "vllm", "generator='vllm'", VLLM_INSTALL_HINT),
        (c.lora_rank > 0, "peft", f"lora_rank={c.lora_rank}", LORA_INSTALL_HINT),
        (c.ray_workers > 0, "ray", f"ray_workers={c.ray_workers}", 'pip install -e ".[ray]" (or ray_workers=0)'),
        (bool(c.eval_reasoning), "math_verify", f"eval_reasoning={c.eval_reasoning}", EVAL_INSTALL_HINT),
        (
            any(source.startswith("gym:") for source in c.eval_reasoning),
            "reasoning_gym",
            f"eval_reasoning={c.eval_reasoning}",
            EVAL_INSTALL_HINT,
        ),
        (c.tensorboard, "tensorboard", "tensorboard=True", "pip install tensorboard (or --no-tensorboard)"),
        (c.wandb, "wandb", "wandb=True", "pip install wandb (or --no-wandb)"),
    )
    return missing_packages(needs, installed)


def missing_packages(
    needs: Sequence[tuple[bool, str, str, str]], installed: Callable[[str], bool] | None = None
) -> list[str]:
    """For each (wanted, module, option, how to install) whose option is wanted and whose module this machine
    lacks (`installed(module)`; by default `importlib.util.find_spec`), one line naming them."""
    installed = installed or (lambda module: importlib.util.find_spec(module) is not None)
    return [
        f"{option} needs the {module} package: {hint}" for wanted, module, option, hint in needs
        if wanted and not installed(module)
    ]  # fmt: skip


def check_extras(c: TrainConfig) -> None:
    """Refuse, at start, an option whose package is not installed (before minutes of model building)."""
    missing = missing_extras(c)
    if missing:
        raise ConfigError(missing[0])


def check_games(game_kwargs: dict[str, dict]) -> None:
    """Each game (env id: options) is registered and builds with its options, each built once: a bad id or
    option fails here, named."""
    for env_id in game_kwargs:
        _check_env_id(env_id)
    for env_id, kwargs in game_kwargs.items():
        try:
            spiral_envs.make(env_id, **kwargs)
        except (TypeError, ValueError, RuntimeError) as err:  # RuntimeError: TextArena cannot build it here
            raise ConfigError(f"{env_id} with options {kwargs}: {err}") from None


def _check_env_id(env_id: str) -> None:
    try:
        spiral_envs.spec(env_id)
    except spiral_envs.UnknownEnvError as err:
        raise ConfigError(str(err)) from None


def check_model(model: str | None) -> None:
    """`model` is None (the tiny model), a folder holding a model or a checkpoint, or looks like a hub id."""
    if model is None:
        return
    folder = Path(model).expanduser()
    if not folder.is_dir():
        if not _HUB_ID.fullmatch(model):
            raise ConfigError(
                f"model={model!r} is not a folder here, nor a Hugging Face id such as 'Qwen/Qwen3-4B-Base': "
                "give a model folder (config.json and weights) or a run's checkpoint, or no model for the tiny one"
            )
        return
    found = _model_folder(folder)
    if found is None:
        raise ConfigError(
            f"model={model!r} holds no model (no config.json, nor adapter_config.json of a LoRA "
            "checkpoint, there or in its model/ folder)"
        )
    _model_config(found)


def check_training_start(c: TrainConfig, run_dir: Path) -> None:
    """What a run that trains here and now needs beyond `check_run` (a config made for planning, or for another
    machine, need not meet it): the device it names, and a run folder it can write."""
    _check_device(c)
    check_run_dir(run_dir)


def check_run_dir(path: Path) -> None:
    """The run folder `path` is a folder this process can write, or can be made as one."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"run folder {path} is a file, not a folder; give --run-dir a folder (new or a run's)")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"run folder {path}: {existing} is a file, not a folder; give --run-dir another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"run folder {path}: {existing} is not writable here; give --run-dir a folder you can write")


def _model_folder(folder: Path) -> Path | None:
    """Where a model folder or a run's checkpoint keeps its model (itself, or its model/ subfolder), or None."""
    for candidate in (folder, folder / "model"):
        if any((candidate / name).exists() for name in _MODEL_FILES):
            return candidate
    return None


def _model_config(folder: Path) -> dict[str, Any]:
    """The model's config.json as a mapping ({} where there is none: a LoRA adapter folder); a config.json that
    does not read is named."""
    path = folder / "config.json"
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path} does not read as JSON ({err}); restore the model's config.json") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} holds {type(data).__name__}, not the model's config mapping")
    return data


def _check_model_fits(c: TrainConfig) -> None:
    """The answer lengths fit the model's positions, and `template: chat` has a template to apply, where this
    machine can tell (the tiny model, a local folder; a hub id is read at load)."""
    if c.model is None:
        from spiral_train.models.tiny import TinySpec

        positions, where = TinySpec.max_positions, "the tiny model"
        has_template = False
    else:
        folder = _model_folder(Path(c.model).expanduser())
        if folder is None:  # a hub id: nothing here to read
            return
        config = _model_config(folder)
        positions = config.get("max_position_embeddings") or config.get("text_config", {}).get(
            "max_position_embeddings"
        )
        where = f"{folder / 'config.json'} (max_position_embeddings)"
        has_template = _has_chat_template(folder)
    if c.template == "chat" and not has_template:
        raise ConfigError(
            f"template='chat' but {'the tiny model' if c.model is None else c.model} has no chat template "
            "(tokenizer_config.json chat_template, or chat_template.jinja); use --template qwen3 or none"
        )
    if not isinstance(positions, int) or isinstance(positions, bool):
        return
    lengths = [("max_new_tokens", c.max_new_tokens)]
    if c.eval_reasoning:
        lengths.append(("eval_reasoning_max_new_tokens", c.eval_reasoning_max_new_tokens))
    for name, tokens in lengths:
        if tokens >= positions:
            raise ConfigError(
                f"{name}={tokens} does not fit the model: {where} gives {positions} positions for prompt and "
                f"answer; use --{name.replace('_', '-')} {positions // 2} or less"
            )


def _has_chat_template(folder: Path) -> bool:
    if any((folder / name).exists() for name in _CHAT_TEMPLATE_FILES):
        return True
    path = folder / "tokenizer_config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return True  # no tokenizer config here to read (a LoRA adapter's base has it): the load decides
    return isinstance(data, dict) and bool(data.get("chat_template"))


def _check_benchmarks(c: TrainConfig) -> None:
    """Each `eval_reasoning` file or name is found and reads (a gym: source is generated at load)."""
    from spiral_train.reasoning.data import load_problems

    for source in c.eval_reasoning:
        if source.startswith("gym:"):
            continue
        try:
            load_problems(source, c.eval_reasoning_dir, 1)
        except (OSError, ValueError, ImportError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            first = first.replace("--data-dir", "--eval-reasoning-dir")  # spiral-eval's name for the folder
            raise ConfigError(
                f"eval_reasoning: {first} (--eval-reasoning-dir {c.eval_reasoning_dir})"
                if c.eval_reasoning_dir
                else f"eval_reasoning: {first}"
            ) from None


def _check_device(c: TrainConfig) -> None:
    """device: cuda needs a GPU this process sees (a Ray cluster elsewhere, `ray_address`, may have them)."""
    if c.device != "cuda" or c.ray_address:
        return
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("device='cuda' but no CUDA GPU is visible here; use --device cpu (or auto)")
