"""A run's config from a preset, a YAML file and overrides: names checked, values coerced to their field's type,
then the value checks and, once, the run checks."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from spiral_train.config.presets import PRESETS
from spiral_train.config.run_checks import check_run
from spiral_train.config.schema import ConfigError, TrainConfig
from spiral_train.config.values import check_values


def make_config(preset: str = "tiny-cpu", overrides: dict[str, Any] | None = None) -> TrainConfig:
    """A preset with overrides applied and checked, values and run (`run_checks.check_run`); an unknown option
    name fails with a suggestion."""
    if preset not in PRESETS:
        raise ConfigError(f"preset={preset!r} is unknown; choose one of {list(PRESETS)}")
    values = {**PRESETS[preset], **(overrides or {})}
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    for key in values:
        if key not in names:
            hint = difflib.get_close_matches(key, names, n=1)
            raise ConfigError(f"unknown option {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    types = get_type_hints(TrainConfig)
    config = TrainConfig(**{k: coerce(k, v, types[k]) for k, v in values.items()})
    check_values(config)
    check_run(config)
    return config


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping of option: value in a YAML file; a file that is missing, not UTF-8, not YAML, or holds a tag
    (`!!python/object`, never executed) fails as a `ConfigError` naming the file and the place."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path} is not UTF-8 text (byte offset {err.start}); save it as UTF-8 YAML") from None
    except OSError as err:
        raise ConfigError(f"{path}: {err.strerror or err}; give a readable YAML file of option: value") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} does not read as plain YAML (no !!tags): {_yaml_problem(err)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of option: value, got {type(data).__name__}")
    return data


def _yaml_problem(err: yaml.YAMLError) -> str:
    """One line: what the YAML reader objects to, and where (line and column, counted from 1)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def coerce(name: str, value: Any, annotation: Any) -> Any:
    """Check (and gently convert: YAML lists to tuples, ints to floats) a value against its field's type."""
    origin, args = get_origin(annotation), get_args(annotation)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"{name} may not be null")
    if args and type(None) in args:  # Optional[X]
        inner = [a for a in args if a is not type(None)]
        return coerce(name, value, inner[0])
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}={value!r} must be true or false")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}={value!r} must be an integer")
        return value
    if annotation is float:
        if isinstance(value, str):  # YAML reads 1e-6 (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}={value!r} must be a number")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}={value!r} must be a string")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}={value!r} must be a list")
        return [coerce(name, v, args[0]) for v in value]
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{name}={value!r} must be a list of {len(args)} values")
        return tuple(coerce(name, v, a) for v, a in zip(value, args))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name}={value!r} must be a mapping")
        return dict(value)
    return value


def to_dict(config: TrainConfig) -> dict[str, Any]:
    """The config as plain YAML-ready data (a run folder's config.yaml)."""
    data = dataclasses.asdict(config)
    data["adam_betas"] = list(config.adam_betas)
    return data
