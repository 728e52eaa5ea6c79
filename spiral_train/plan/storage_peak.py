"""The peak bytes of live tensor storages while some code runs: the CPU's `torch.cuda.max_memory_allocated`.

A `TorchDispatchMode` sees every tensor an operator returns (forward, backward and optimizer alike); each new
storage is counted until Python drops it (a weak reference's callback). Storages that exist before (weights,
gradients, AdamW state) are handed in at the start. It counts what the plan models, tensor bytes, and is
exact and repeatable on any machine, where a process's peak RSS also holds the allocator's free lists, the
interpreter and the libraries, and moves with the machine's load and malloc's thresholds.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map_only


class StoragePeak(TorchDispatchMode):
    """`with StoragePeak(existing) as tracker: ...`, then `tracker.peak` (bytes) and `tracker.current`.

    `existing`: tensors alive before (pass an iterator, e.g. `state_tensors(...)`, so no list keeps them alive
    after they are freed inside the block)."""

    def __init__(self, existing: Iterable[torch.Tensor] = ()) -> None:
        super().__init__()
        self._live: dict[int, int] = {}
        self._refs: dict[int, weakref.ref] = {}
        self.current = 0
        for tensor in existing:
            self._track(tensor)
        self.peak = self.current

    def _track(self, tensor: torch.Tensor) -> None:
        if tensor.device.type == "meta":
            return
        storage = tensor.untyped_storage()
        key = storage._cdata
        if key in self._live:
            return
        size = storage.nbytes()
        self._live[key] = size
        self.current += size
        self._refs[key] = weakref.ref(storage, lambda _ref, key=key: self._drop(key))

    def _drop(self, key: int) -> None:
        self.current -= self._live.pop(key, 0)
        self._refs.pop(key, None)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        out = func(*args, **(kwargs or {}))
        tree_map_only(torch.Tensor, self._track, out)
        self.peak = max(self.peak, self.current)
        return out


def state_tensors(model: torch.nn.Module, optimizer: Any = None) -> Iterable[torch.Tensor]:
    """A model's parameters, buffers and gradients and an optimizer's state tensors, one at a time."""
    yield from model.parameters()
    yield from model.buffers()
    yield from (p.grad for p in model.parameters() if p.grad is not None)
    if optimizer is not None:
        for state in optimizer.state.values():
            yield from (v for v in state.values() if isinstance(v, torch.Tensor))
