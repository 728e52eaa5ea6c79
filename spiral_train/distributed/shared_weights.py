"""State dicts through Ray's object store, read by every process without a copy of their own.

Ray pickles a torch tensor, so each process that fetches a state dict gets a private copy of it, and only then
loads it into its model: a second whole model per process for a moment (docs/scaling.md, the rehearsal). Ray stores
a numpy array out of band instead, and a reader's array lies over the object store's shared memory. So what crosses
is plain data: `pack` turns each tensor into its raw bytes (a uint8 array, no copy on the sending side beyond what
`ray.put` writes), its dtype's name and its shape; `unpack` rebuilds the tensors over those bytes, without a copy,
and `load_state_dict` is the one copy a reader makes. The tensors `unpack` returns may lie in read-only memory:
read them, never write to them.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import torch

Packed = dict[str, tuple[np.ndarray, str, tuple[int, ...]]]
"""name -> (the tensor's bytes, its dtype's name in torch, its shape)."""


def pack(state_dict: Mapping[str, torch.Tensor]) -> Packed:
    """A state dict as plain data for `ray.put` (tensors moved to the CPU; one already there is not copied
    unless it is not contiguous)."""
    packed: Packed = {}
    for name, tensor in state_dict.items():
        tensor = tensor.detach().to("cpu").contiguous()
        raw = tensor.reshape(-1).view(torch.uint8).numpy()
        packed[name] = (raw, str(tensor.dtype).removeprefix("torch."), tuple(tensor.shape))
    return packed


def unpack(packed: Packed) -> dict[str, torch.Tensor]:
    """The tensors of `pack`'s output, over its bytes (read-only when they come from Ray's object store)."""
    with warnings.catch_warnings():  # torch warns that the array is read-only: these tensors are only read
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return {name: _tensor(raw, getattr(torch, dtype), shape) for name, (raw, dtype, shape) in packed.items()}


def _tensor(raw: np.ndarray, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    if raw.size == 0:  # an empty array's stride cannot be viewed as another dtype
        return torch.empty(shape, dtype=dtype)
    return torch.from_numpy(raw).view(dtype).reshape(shape)
