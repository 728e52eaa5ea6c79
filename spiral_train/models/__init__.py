"""Models and their I/O: loading (`loading`), LoRA (`lora`), the embedded tiny model (`tiny`, `warmup`), and
random-init models with the hub's shapes and tokenizer layout (`random_model`, `hub_tokenizer`).

`spiral_train.models` was one module before it was a folder: its names are still found here, on first use."""

from __future__ import annotations

from spiral_train import names_on_first_use

_FORMER = {
    "resolve_device": "spiral_train.models.loading",
    "load_model": "spiral_train.models.loading",
    "reference_model": "spiral_train.models.loading",
    "tiny_spec": "spiral_train.models.loading",
    "model_policy": "spiral_train.rollout.policy",
    "frozen_checkpoint_policy": "spiral_train.rollout.policy",
    "frozen_copy": "spiral_train.rollout.policy",
}


__getattr__ = names_on_first_use(__name__, _FORMER)
