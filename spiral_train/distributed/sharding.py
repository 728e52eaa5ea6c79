"""FSDP learner ranks (`ray_learner_strategy: fsdp`): each rank holds 1/N of the weights, gradients and Adam moments.

The replicated ranks of `data_parallel.DataParallelLearner` each keep a whole model and optimizer, so the
model size is bounded by one device; FSDP2 (`torch.distributed.fsdp.fully_shard`, ZeRO-3 style) shards all
three and gathers a block's weights only while that block runs. Two consequences shape this module:

- Every forward and backward is a collective (the all-gather of a block's weights, the reduce-scatter of its
  gradients), so all ranks must run the same number of micro-batches. A rank's shard of a self-play batch
  has its own size (turns per game vary; a rank may get none), so `micro_batches` pads the short ranks with
  empty micro-batches, whose zero-loss forward and backward take part in the collectives and add nothing.
- The loss is already normalised by the whole batch (`global_counts`), so the per-rank gradients must be
  summed, not averaged: every FSDP unit gets a gradient divide factor of 1.

Shard units are the model's transformer blocks (the classes its `_no_split_modules` names, as Hugging Face
Accelerate does) plus the root, which holds the embeddings and head (tied or not). Checkpoints and the
driver's copy of the weights use full, unsharded state dicts in the one-process format, so a run can resume
with another number of ranks, another strategy, or none.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard

from spiral_train.distributed.data_parallel import DataParallelLearner
from spiral_train.models import lora
from spiral_train.rollout.collector import Turn
from spiral_train.rollout.generation import autocast

FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)
"""Gather whole tensors onto rank 0's CPU (the other ranks get an empty dict)."""


def shard(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Shard `model` in place over the default process group, moving each rank's shards to `device`."""
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    base = model.get_base_model() if lora.is_peft(model) else model
    blocks = set(getattr(base, "_no_split_modules", None) or [])
    units = [m for m in base.modules() if type(m).__name__ in blocks]
    if not units:
        raise ValueError(
            f"{type(base).__name__} names no transformer block class in _no_split_modules, so FSDP has no shard "
            "units; use ray_learner_strategy: ddp for this model"
        )
    for unit in units:
        fully_shard(unit, mesh=mesh)
    fully_shard(model, mesh=mesh)
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.set_gradient_divide_factor(1.0)  # sum: the loss is normalised by the whole batch already
            module.set_force_sum_reduction_for_comms(True)  # a plain SUM (gloo has no pre-multiplied sum)
    return model


def full_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole state dict on rank 0's CPU ({} on the others); a collective: every rank must call it."""
    return get_model_state_dict(model, options=FULL)


class ShardedLearner(DataParallelLearner):
    """A `Learner` over an FSDP-sharded model: padded micro-batches, gradients reduced inside backward."""

    def micro_batches(self, chunks: list[list[int]]) -> list[list[int]]:
        count = torch.tensor([len(chunks)], device=self._comm_device())
        dist.all_reduce(count, op=dist.ReduceOp.MAX)
        return chunks + [[] for _ in range(int(count.item()) - len(chunks))]

    def backward(self, chunk: list[Turn], indices: list[int], *args: Any) -> None:
        if chunk:
            return super().backward(chunk, indices, *args)
        # a padding micro-batch: the same collectives as a real one (the reference model's forward too, when
        # it is sharded), and a zero loss, so nothing is added to the summed gradients
        ids = torch.full((1, 2), self.pad_id, dtype=torch.long, device=self.device)
        with autocast(self.device, self.settings.bf16):
            logits = self.model(input_ids=ids, logits_to_keep=1).logits
            if self.ref_model is not None and self.settings.kl_coef > 0:
                with torch.no_grad():
                    self.ref_model(input_ids=ids, logits_to_keep=1)
        (logits.float().sum() * 0.0).backward()

    def reduce_gradients(self) -> None:
        """Nothing left to do: each backward reduce-scattered its gradients into this rank's shards."""

    def state_dict(self) -> dict:
        """The full optimizer state (on rank 0; {} elsewhere), keyed like `torch.optim.Optimizer.state_dict`."""
        optimizer = to_indexed(get_optimizer_state_dict(self.model, self.optimizer, options=FULL))
        return {**super().state_dict(), "optimizer": optimizer}

    def load_state_dict(self, state: dict) -> None:
        if not state["optimizer"]["state"]:
            # a fresh optimizer: there is nothing to shard, and set_optimizer_state_dict would first create the
            # state with a zero-gradient step, leaving Adam's step count at 1 and the next bias correction wrong
            super().load_state_dict(state)
            return
        full = to_named(state["optimizer"], trainable_names(self.model))
        options = StateDictOptions(full_state_dict=True)
        set_optimizer_state_dict(self.model, self.optimizer, optim_state_dict=full, options=options)
        self.scheduler.load_state_dict(state["scheduler"])
        self.rng.setstate(state["rng"])


def trainable_names(model: torch.nn.Module) -> list[str]:
    """Parameter names in the optimizer's order (the `Learner` hands it the trainable parameters in order)."""
    return [name for name, p in model.named_parameters() if p.requires_grad]


def to_indexed(named: dict[str, Any]) -> dict[str, Any]:
    """An optimizer state dict keyed by parameter name (FSDP's full format) -> keyed by position (torch's)."""
    if not named:
        return {}
    order = [name for group in named["param_groups"] for name in group["params"]]
    index = {name: i for i, name in enumerate(order)}
    return {
        "state": {index[name]: value for name, value in named["state"].items()},
        "param_groups": [{**g, "params": [index[n] for n in g["params"]]} for g in named["param_groups"]],
    }


def to_named(indexed: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The inverse of `to_indexed`, for the optimizer over parameters `names` (in order)."""
    return {
        "state": {names[i]: value for i, value in indexed["state"].items()},
        "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in indexed["param_groups"]],
    }
