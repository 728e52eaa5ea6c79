"""Every option of a training run: the schema (`schema`), pure value checks (`values`), checks against this
machine run once a run (`run_checks`), presets, parsing (`make_config`), the `--help` text (`help`), and the
narrow settings components take (`views`).

A bad value fails at start, naming the option and what it accepts, not an hour into a run. Names are imported on
first use: `views` and `schema` need neither the games nor their packages, so the learner and the samplers
import their settings on a machine without them (`benchmarks/gpu_check.py`).
"""

from __future__ import annotations

from spiral_train import names_on_first_use

_EXPORTS = {
    "option_groups": "help",
    "coerce": "parsing",
    "load_yaml": "parsing",
    "make_config": "parsing",
    "to_dict": "parsing",
    "PRESETS": "presets",
    "check_run": "run_checks",
    "DEVICES": "schema",
    "EVAL_OPPONENTS": "schema",
    "GENERATORS": "schema",
    "LORA_INSTALL_HINT": "schema",
    "LOSS_AGGREGATIONS": "schema",
    "LR_SCHEDULES": "schema",
    "OPPONENTS": "schema",
    "RAE_MODES": "schema",
    "ConfigError": "schema",
    "TrainConfig": "schema",
    "check_values": "values",
}

__all__ = sorted(_EXPORTS)


__getattr__ = names_on_first_use(__name__, {name: f"{__name__}.{module}" for name, module in _EXPORTS.items()})
