"""Models and their I/O: loading (`loading`), LoRA (`lora`), the embedded tiny model (`tiny`, `warmup`), and
random-init models with the hub's shapes and tokenizer layout (`random_model`, `hub_tokenizer`).

`spiral_train.models` was one module before it was a folder: its names are still found here, on first use."""

from __future__ import annotations

import importlib
from typing import Any

_FORMER = {
    "resolve_device": "spiral_train.models.loading",
    "load_model": "spiral_train.models.loading",
    "reference_model": "spiral_train.models.loading",
    "tiny_spec": "spiral_train.models.loading",
    "model_policy": "spiral_train.rollout.policy",
    "frozen_checkpoint_policy": "spiral_train.rollout.policy",
    "frozen_copy": "spiral_train.rollout.policy",
}


def __getattr__(name: str) -> Any:
    if name not in _FORMER:
        raise AttributeError(f"module 'spiral_train.models' has no attribute {name!r}")
    return getattr(importlib.import_module(_FORMER[name]), name)
