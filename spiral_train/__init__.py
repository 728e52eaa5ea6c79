"""spiral_train: self-play RL with Role-conditioned Advantage Estimation on any `spiral_envs` game."""

from spiral_train.config import PRESETS, ConfigError, TrainConfig, make_config
from spiral_train.rae import RAE, RoleReturn

__all__ = ["PRESETS", "RAE", "ConfigError", "RoleReturn", "TrainConfig", "make_config"]
