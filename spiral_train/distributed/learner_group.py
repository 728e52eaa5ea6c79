"""The learner as a group of Ray actors: data-parallel ranks under torch.distributed (gloo on CPU, nccl on CUDA).

Each rank holds the whole model and runs the unchanged `Learner.update` loop on its shard of the turns; the
two hooks of `Learner` make the ranks one learner: `global_counts` sums the token and turn counts (so the
loss is normalised by the whole batch, as in one process) and `reduce_gradients` sums the gradients before
clipping. Every rank then takes the same clipped AdamW step from the same gradient, so the weights stay
identical without a broadcast, and the update equals the one-process update up to float summation order.

Two strategies (`ray_learner_strategy`): "ddp" is the above, which sums once per optimizer step and so
works with any shard sizes, at the cost of a whole model and Adam state per rank; "fsdp" shards both
(`sharding.ShardedLearner`, torch FSDP2) for models one device cannot train. `ray_learners=1` skips
torch.distributed altogether. LoRA works with both: the ranks build the same adapters as the driver.

`LearnerGroup` is the trainer's learner on Ray (`parts.UpdatesWeights`): `update`, `state_dict` and
`load_state_dict`, like a `Learner`. After each update it copies rank 0's weights into the driver's model
(for evaluation and checkpoints) and puts them in the Ray object store once, as a plain state dict with any
LoRA adapters merged in, for the rollout workers to fetch.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from transformers.utils import logging as hf_logging

from spiral_train import lora
from spiral_train.collector import Turn
from spiral_train.config import TrainConfig
from spiral_train.distributed.data_parallel import DataParallelLearner
from spiral_train.learner import METRIC_MAXES, METRIC_SUMS, Learner, LearnerSettings
from spiral_train.models import load_model, reference_model, resolve_device


class LearnerRank:
    """One rank of the group, in its own Ray actor (a plain class: Ray wraps it in `LearnerGroup`)."""

    def __init__(self, config: TrainConfig, source: str, rank: int, world: int, threads: int = 1) -> None:
        torch.set_num_threads(max(1, threads))
        hf_logging.disable_progress_bar()
        self.config = config
        self.source = source
        self.rank = rank
        self.world = world
        self.device = resolve_device(config.device)
        self.sharded = config.ray_learner_strategy == "fsdp"
        # an FSDP rank loads the model on CPU and moves only its own shards to the device
        self.load_device = torch.device("cpu") if self.sharded else self.device
        self.model, self.tokenizer, _ = load_model(
            dataclasses.replace(config, model=source), self.load_device, log=lambda *_: None
        )
        self.learner: Learner | None = None

    def address(self) -> tuple[str, int]:
        """Where rank 0 listens for the others: this node's address and a free port."""
        import ray

        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return ray.util.get_node_ip_address(), port

    def setup(self, master: tuple[str, int], weights: dict[str, torch.Tensor], learner_state: dict | None) -> None:
        if self.world > 1:
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            dist.init_process_group(
                backend, init_method=f"tcp://{master[0]}:{master[1]}", rank=self.rank, world_size=self.world
            )
        self.model.load_state_dict(weights)
        ref_model = reference_model(self.config, self.model, self.source, self.load_device)
        pad_id = self.tokenizer.pad_token_id
        settings = LearnerSettings.from_config(self.config)
        if self.sharded:
            from spiral_train.distributed.sharding import ShardedLearner, shard

            shard(self.model, self.device)
            if isinstance(ref_model, torch.nn.Module):  # a copy (not LoRA's adapters-off view): shard it too
                shard(ref_model, self.device)
            self.learner = ShardedLearner(self.model, settings, self.device, pad_id, ref_model)
        else:
            kind = DataParallelLearner if self.world > 1 else Learner
            self.learner = kind(self.model, settings, self.device, pad_id, ref_model)
        if learner_state is not None:
            self.learner.load_state_dict(learner_state)

    def update(self, turns: Sequence[Turn]) -> dict[str, float]:
        assert self.learner is not None, "LearnerRank.setup must run before update"
        return self.learner.update(turns)

    def weights(self) -> dict[str, torch.Tensor]:
        """The whole state dict on CPU; under FSDP a collective whose result is rank 0's ({} elsewhere)."""
        if self.sharded:
            from spiral_train.distributed.sharding import full_weights

            return full_weights(self.model)
        return cpu_weights(self.model)

    def state_dict(self) -> dict:
        assert self.learner is not None
        return self.learner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        assert self.learner is not None
        self.learner.load_state_dict(state)

    def shutdown(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def cpu_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def play_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What rollout workers load: a plain transformers state dict on CPU (LoRA adapters merged in)."""
    return {k: v.to("cpu") for k, v in lora.merged_state_dict(model).items()}


class LearnerGroup:
    """`ray_learners` ranks that act as one `Learner` for the trainer; `version` counts the updates done."""

    def __init__(
        self, config: TrainConfig, source: str, model: torch.nn.Module, learner_state: dict | None, version: int
    ) -> None:
        """`learner_state` None: fresh optimizer state (a resumed run loads its own with `load_state_dict`)."""
        import ray

        self.model = model
        self.world = config.ray_learners
        actor = ray.remote(LearnerRank).options(
            num_cpus=config.ray_learner_cpus, num_gpus=config.ray_learner_gpus, max_restarts=0
        )
        threads = max(1, round(config.ray_learner_cpus))
        self.ranks = [actor.remote(config, source, rank, self.world, threads) for rank in range(self.world)]
        master = ray.get(self.ranks[0].address.remote())
        self.sharded = config.ray_learner_strategy == "fsdp"
        weights = ray.put(cpu_weights(model))
        ray.get([r.setup.remote(master, weights, learner_state) for r in self.ranks])
        self.weights_ref = ray.put(play_weights(model))
        """The rollout workers' weights in the object store, put once per update."""
        self.version = version

    def _rank0(self, method: str, *args: Any) -> Any:
        """Rank 0's answer to `method`; under FSDP every rank must take part (gathering shards is a collective)."""
        import ray

        ranks = self.ranks if self.sharded else self.ranks[:1]
        return ray.get([getattr(rank, method).remote(*args) for rank in ranks])[0]

    def update(self, turns: Sequence[Turn]) -> dict[str, float]:
        """One update on all ranks (rank r gets turns r, r+N, ...); then the driver's model gets the weights."""
        import ray

        shards = [list(turns[rank :: self.world]) for rank in range(self.world)]
        results = ray.get([r.update.remote(shard) for r, shard in zip(self.ranks, shards)])
        merged: dict[str, Any] = dict(results[0])
        for key in METRIC_SUMS:  # each rank reports its share of whole-batch sums
            if key in merged:
                merged[key] = sum(m.get(key, 0.0) for m in results)
        for key in METRIC_MAXES:
            if key in merged:
                merged[key] = max(m.get(key, 0.0) for m in results)
        self.model.load_state_dict(self._rank0("weights"))
        self.weights_ref = ray.put(play_weights(self.model))
        self.version += 1
        return merged

    def state_dict(self) -> dict:
        return self._rank0("state_dict")

    def load_state_dict(self, state: dict) -> None:
        import ray

        ray.get([r.load_state_dict.remote(state) for r in self.ranks])

    def shutdown(self) -> None:
        import ray

        for rank in self.ranks:
            ray.kill(rank, no_restart=True)
        self.ranks = []
