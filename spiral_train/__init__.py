"""spiral_train: self-play RL with Role-conditioned Advantage Estimation on any `spiral_envs` game.

Its folders: `config/` (options, presets, each part's settings), `rollout/` (records, sources, the collector, model
seats, generation, the opponent pool), `models/` (loading, LoRA, the tiny model), `eval/` (games, populations,
`spiral-eval`), `reasoning/` (benchmarks), `distributed/` (Ray), `plan/` (memory and placement); the loop
(`trainer`), RAE (`rae`) and the learner (`learner`) at the top. Modules that lived at the top before the folders
are still importable by their old paths (`_MOVED`).

Its names are imported on first use: `spiral_train.learner` and `spiral_train.rollout.generation` need neither the
games nor their packages (pettingzoo, gymnasium), so a machine without them can still run the update and the
samplers (`benchmarks/gpu_check.py`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Callable
from typing import Any

_EXPORTS = {
    "PRESETS": "spiral_train.config",
    "ConfigError": "spiral_train.config",
    "TrainConfig": "spiral_train.config",
    "make_config": "spiral_train.config",
    "RAE": "spiral_train.rae",
    "RoleReturn": "spiral_train.rae",
}

__all__ = sorted(_EXPORTS)


def names_on_first_use(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package` that imports each of `names` (name -> module path) on first use; any
    other name is an AttributeError (so a submodule of that name is still found by `import`)."""

    def getattr_(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(names[name]), name)

    return getattr_


__getattr__ = names_on_first_use("spiral_train", _EXPORTS)


_MOVED = {
    "spiral_train.seats": "spiral_train.rollout.records",
    "spiral_train.parts": "spiral_train.rollout.sources",
    "spiral_train.collector": "spiral_train.rollout.collector",
    "spiral_train.generation": "spiral_train.rollout.generation",
    "spiral_train.pool": "spiral_train.rollout.opponent_pool",
    "spiral_train.lora": "spiral_train.models.lora",
    "spiral_train.tiny": "spiral_train.models.tiny",
    "spiral_train.random_model": "spiral_train.models.random_model",
    "spiral_train.hub_tokenizer": "spiral_train.models.hub_tokenizer",
    "spiral_train.warmup": "spiral_train.models.warmup",
    "spiral_train.evaluation": "spiral_train.eval.games",
    "spiral_train.population": "spiral_train.eval.population",
    "spiral_train.eval_cli": "spiral_train.eval.cli",
    "spiral_train.reasoning_data": "spiral_train.reasoning.data",
    "spiral_train.grading": "spiral_train.reasoning.grading",
    "spiral_train.reasoning_eval": "spiral_train.reasoning.benchmarks",
}
"""Modules that moved into folders (issue 27): the old import path still gives the module at its new place."""


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old path of `_MOVED` (or a submodule of one) as the module at its new path, the same object."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        old = next((old for old in _MOVED if name == old or name.startswith(old + ".")), None)
        if old is None:
            return None
        return importlib.util.spec_from_loader(name, self, origin=_MOVED[old] + name[len(old) :])

    def __init__(self) -> None:
        self._specs: dict[str, importlib.machinery.ModuleSpec] = {}

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = importlib.import_module(spec.origin)
        self._specs[spec.name] = module.__spec__  # the import system sets the alias's spec on it; put it back below
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__ = self._specs.pop(module.__spec__.name)  # the module itself already ran at its new path


sys.meta_path.insert(0, _MovedModules())  # before the path finder, which would load a second copy
