"""Checks of a `TrainConfig` against this machine, once a run, before anything loads: the games exist and build
with their options, the model and opponent folders hold what they should, the extras an option needs are
installed. `make_config` runs them (the `spiral-train` start); a `dataclasses.replace` of a checked config, in
a Ray actor for instance, does not run them again.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import TYPE_CHECKING

import spiral_envs
from spiral_train.config.schema import LORA_INSTALL_HINT, OPPONENTS, ConfigError

if TYPE_CHECKING:
    from spiral_train.config.schema import TrainConfig

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
"""What a Hugging Face model id looks like ("Qwen/Qwen3-4B-Base"): a `model` that is neither this nor a folder
here is a mistyped path."""

_MODEL_FILES = ("config.json", "adapter_config.json")


def check_run(c: TrainConfig) -> None:
    """Raise `ConfigError` naming the first option this machine cannot honour, and the fix."""
    check_model(c.model)
    for env_id in [*c.env_ids, *(c.eval_env_ids or [])]:
        _check_env_id(env_id)
    if c.opponent not in OPPONENTS and not Path(c.opponent).is_dir():
        raise ConfigError(f"opponent={c.opponent!r} must be one of {list(OPPONENTS)} or an existing checkpoint folder")
    check_games(c.game_kwargs())
    if c.eval_reasoning and importlib.util.find_spec("math_verify") is None:
        raise ConfigError(f'eval_reasoning={c.eval_reasoning} needs math-verify: pip install -e ".[eval]"')
    if c.lora_rank > 0 and importlib.util.find_spec("peft") is None:
        raise ConfigError(f"lora_rank={c.lora_rank} needs the peft package: {LORA_INSTALL_HINT}")
    if c.ray_workers > 0 and importlib.util.find_spec("ray") is None:
        raise ConfigError(f'ray_workers={c.ray_workers} needs Ray: pip install -e ".[ray]" (or ray_workers=0)')


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
    if not any((f / name).exists() for f in (folder, folder / "model") for name in _MODEL_FILES):
        raise ConfigError(
            f"model={model!r} holds no model (no config.json, nor adapter_config.json of a LoRA "
            "checkpoint, there or in its model/ folder)"
        )
