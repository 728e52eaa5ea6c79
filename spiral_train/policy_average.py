"""The policy a run ships: an exponential moving average (EMA) of the trained weights over steps.

In a zero-sum game the last iterate of self-play circles the equilibrium, while an average of past policies
converges (fictitious play; Polyak averaging). `WeightAverage` keeps `avg <- decay * avg + (1 - decay) * w` of
every trainable weight after each update (the starting weights are the first average), on the weights' own
device and dtype. `applied(model)` puts the average into the model for as long as evaluation or a checkpoint's
save takes, then puts the trained weights back bit for bit, so training never sees the average.

With LoRA only the adapters train, so only they are averaged. Which policy evaluation and checkpoints hold is
said in `docs/learning.md`: with an average, evaluation's `eval/...` keys and a checkpoint's `model/` are the
average, `last_iterate/...` keys and `last_iterate/` the weights training continues from.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch


class WeightAverage:
    """The EMA of a model's trainable weights (see the module docstring)."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"policy_average_decay={decay} must be in [0, 1) (0 ships the last iterate)")
        self.decay = decay
        self.average: dict[str, torch.Tensor] = {
            name: param.detach().clone() for name, param in _trainable(model).items()
        }
        """Parameter name -> its average, for every parameter that requires a gradient."""

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Fold the model's current weights into the average (once, after each update)."""
        for name, param in _trainable(model).items():
            self.average[name].lerp_(param.detach(), 1.0 - self.decay)

    @contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[None]:
        """The average in `model` inside the block; the trained weights back, exactly, after it (even on error)."""
        params = _trainable(model)
        trained = {name: param.detach().clone() for name, param in params.items()}
        with torch.no_grad():
            for name, param in params.items():
                param.copy_(self.average[name])
        try:
            yield
        finally:
            with torch.no_grad():
                for name, param in params.items():
                    param.copy_(trained[name])

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        """Write the average into `model`'s weights of the same names (a frozen copy: the moving KL anchor)."""
        params = dict(model.named_parameters())
        for name, tensor in self.average.items():
            params[name].copy_(tensor)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "average": {name: t.detach().cpu() for name, t in self.average.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a saved average; a checkpoint of another model (other names or shapes) raises ValueError."""
        saved = state["average"]
        if set(saved) != set(self.average):
            raise ValueError(f"the saved policy average holds {len(saved)} weights, the model {len(self.average)}")
        for name, tensor in saved.items():
            if tensor.shape != self.average[name].shape:
                raise ValueError(f"the saved policy average of {name} has shape {tuple(tensor.shape)}")
            self.average[name].copy_(tensor)
        self.decay = float(state["decay"])


def _trainable(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {name: param for name, param in model.named_parameters() if param.requires_grad}
