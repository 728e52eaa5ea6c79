"""Every option of a training run: the schema (`schema`), pure value checks (`values`), checks against this
machine run once a run (`run_checks`), presets, parsing (`make_config`) and the `--help` text (`help`).

A bad value fails at start, naming the option and what it accepts, not an hour into a run.
"""

from spiral_train.config.help import option_groups
from spiral_train.config.parsing import coerce, load_yaml, make_config, to_dict
from spiral_train.config.presets import PRESETS
from spiral_train.config.run_checks import check_run
from spiral_train.config.schema import (
    DEVICES,
    EVAL_OPPONENTS,
    GENERATORS,
    LORA_INSTALL_HINT,
    LOSS_AGGREGATIONS,
    LR_SCHEDULES,
    OPPONENTS,
    RAE_MODES,
    ConfigError,
    TrainConfig,
)
from spiral_train.config.values import check_values

__all__ = [
    "DEVICES",
    "EVAL_OPPONENTS",
    "GENERATORS",
    "LORA_INSTALL_HINT",
    "LOSS_AGGREGATIONS",
    "LR_SCHEDULES",
    "OPPONENTS",
    "PRESETS",
    "RAE_MODES",
    "ConfigError",
    "TrainConfig",
    "check_run",
    "check_values",
    "coerce",
    "load_yaml",
    "make_config",
    "option_groups",
    "to_dict",
]
