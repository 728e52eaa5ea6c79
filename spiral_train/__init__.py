"""spiral_train: self-play RL with Role-conditioned Advantage Estimation on any `spiral_envs` game.

Its names are imported on first use: `spiral_train.learner` and `spiral_train.generation` need neither the
games nor their packages (pettingzoo, gymnasium), so a machine without them can still run the update and the
samplers (`benchmarks/gpu_check.py`).
"""

from __future__ import annotations

import importlib
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


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'spiral_train' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
