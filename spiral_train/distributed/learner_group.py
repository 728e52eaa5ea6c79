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

`LearnerGroup` is the trainer's learner on Ray (`sources.UpdatesWeights`): `update`, `state_dict` and
`load_state_dict`, like a `Learner`. After each update it copies rank 0's weights into the driver's model
(for evaluation and checkpoints) and puts them in the Ray object store once, as a plain state dict with any
LoRA adapters merged in, for the rollout workers to fetch.

Placement: the ranks run in one Ray placement group, a bundle per rank (its `ray_learner_cpus` and
`ray_learner_gpus`), `STRICT_PACK`, so all ranks share a node (NCCL and FSDP's collectives stay on its
links): the driver's node where it has room, else any (so the group does not take a node meant for rollout
workers when the driver's has room). The group is waited for with a timeout, and removed by `shutdown`.

Failure: ranks are never restarted (a new process cannot rejoin a running process group). When any rank's
call fails (its process died, or it raised), the group kills every rank (the others may be blocked in a
collective, waiting for the dead one) and raises `LearnerRankError`, naming the rank, the cause, the run's
last checkpoint and how to resume from it. `ray_learner_timeout_s`, the process group's timeout, bounds how
long a rank waits in a collective for a peer whatever the driver does.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from transformers.utils import logging as hf_logging

from spiral_train.checkpoint import latest_checkpoint
from spiral_train.config.views import LearnerRankSettings, RaySettings
from spiral_train.distributed.data_parallel import DataParallelLearner
from spiral_train.distributed.messages import RunStopped, describe_resources, error_text
from spiral_train.distributed.shared_weights import Packed, pack, unpack
from spiral_train.learner import METRIC_MAXES, METRIC_SUMS, Learner
from spiral_train.models import lora
from spiral_train.models.loading import load_model, reference_model, resolve_device
from spiral_train.rollout.collector import Turn

PLACEMENT_TIMEOUT_S = 600.0
"""How long `LearnerGroup` waits for its placement group (an autoscaling cluster may need to add a node)."""

FAILURE_GRACE_S = 5.0
"""After a rank's call fails, how long the group waits for the other ranks' calls before it kills them: a
rank blocked on a dead peer often fails a moment later, and its error belongs in the report."""


class LearnerRankError(RunStopped):
    """A learner rank's call failed; the group has stopped every rank. The message says which rank, why, and
    how to resume the run from its last checkpoint."""


def learner_bundle(cpus: float, gpus: float) -> dict[str, float]:
    """One rank's bundle in the learner group's placement group (a resource asked 0 of is left out)."""
    return {name: amount for name, amount in (("CPU", cpus), ("GPU", gpus)) if amount > 0}


class LearnerRank:
    """One rank of the group, in its own Ray actor (a plain class: Ray wraps it in `LearnerGroup`)."""

    def __init__(self, settings: LearnerRankSettings, rank: int, world: int, threads: int = 1) -> None:
        torch.set_num_threads(max(1, threads))
        hf_logging.disable_progress_bar()
        self.settings = settings
        self.source = settings.model.model
        """The run's starting model (a folder): the KL anchor."""
        self.rank = rank
        self.world = world
        self.device = resolve_device(settings.device)
        self.sharded = settings.ray_learner_strategy == "fsdp"
        # an FSDP rank loads the model on CPU and moves only its own shards to the device
        self.load_device = torch.device("cpu") if self.sharded else self.device
        self.model, self.tokenizer, _ = load_model(settings.model, self.load_device, log=lambda *_: None)
        self.learner: Learner | None = None

    def address(self) -> tuple[str, int]:
        """Where rank 0 listens for the others: this node's address and a free port."""
        import ray

        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return ray.util.get_node_ip_address(), port

    def setup(self, master: tuple[str, int], weights: Packed | None, learner_state: dict | None) -> None:
        """Join the process group, take the driver's `weights` over the model loaded from `source` (`setup_weights`:
        None, LoRA's fresh adapters only, or every tensor), and build the learner."""
        if self.world > 1:
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            dist.init_process_group(
                backend,
                init_method=f"tcp://{master[0]}:{master[1]}",
                rank=self.rank,
                world_size=self.world,
                timeout=timedelta(seconds=self.settings.ray_learner_timeout_s),
            )
        if weights is not None:
            load_weights(self.model, unpack(weights))
        settings = self.settings.learner
        ref_model = reference_model(settings, self.model, self.source, self.load_device)
        pad_id = self.tokenizer.pad_token_id
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

    def weights(self) -> Packed:
        """What changed in an update, on the CPU (`shared_weights.pack`ed): the whole state dict, or a LoRA
        model's adapters alone (its base never changes); under FSDP a collective whose result is rank 0's ({}
        elsewhere)."""
        if lora.is_peft(self.model):
            trained = {}
            for name, param in self.model.named_parameters():
                if param.requires_grad:  # every rank, in the same order: a DTensor's gather is a collective
                    whole = param.full_tensor() if hasattr(param, "full_tensor") else param
                    trained[name] = whole.detach().cpu()
            return pack(trained) if self.rank == 0 else {}
        if self.sharded:
            from spiral_train.distributed.sharding import full_weights

            return pack(full_weights(self.model))
        return pack(self.model.state_dict())

    def state_dict(self) -> dict:
        assert self.learner is not None
        return self.learner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        assert self.learner is not None
        self.learner.load_state_dict(state)

    def shutdown(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def load_weights(model: torch.nn.Module, weights: Mapping[str, torch.Tensor]) -> None:
    """Load `weights` into `model`: all of its state dict, or a part of it (LoRA's adapters); a name the model
    does not have raises KeyError."""
    whole = len(weights) == len(model.state_dict())
    unexpected = model.load_state_dict(weights, strict=whole).unexpected_keys
    if unexpected:
        raise KeyError(f"weights the model does not have: {unexpected[:5]}")


def setup_weights(model: torch.nn.Module, version: int) -> Packed | None:
    """What the ranks must load over the model they loaded from the run's `source` (`shared_weights.pack`ed): at
    version 0 (a new run) nothing, or LoRA's adapters alone (initialised at random on the driver; the base is the
    source's); a resumed run's every tensor. A whole second copy of the model crosses the object store only when
    it must."""
    if version > 0:
        return pack(model.state_dict())
    if lora.is_peft(model):
        return pack({k: v for k, v in model.state_dict().items() if "lora_" in k})
    return None


def play_weights(model: torch.nn.Module) -> Packed:
    """What rollout workers load: a plain transformers state dict (LoRA adapters merged in), `shared_weights.pack`ed
    so that each worker reads it from the object store without a copy of its own."""
    return pack(lora.merged_state_dict(model))


class LearnerGroup:
    """`ray_learners` ranks that act as one `Learner` for the trainer; `version` counts the updates done."""

    def __init__(
        self,
        config: RaySettings,
        rank: LearnerRankSettings,
        model: torch.nn.Module,
        learner_state: dict | None,
        version: int,
        run_dir: Path | None = None,
        placement_timeout_s: float = PLACEMENT_TIMEOUT_S,
    ) -> None:
        """`rank`: what each rank trains with (plain data, sent to its actor). `learner_state` None: fresh
        optimizer state (a resumed run loads its own with `load_state_dict`).
        `run_dir`: the run's folder, named with its last checkpoint when a rank fails."""
        import ray
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        self.model = model
        self.world = config.ray_learners
        self.run_dir = run_dir
        self.sharded = config.ray_learner_strategy == "fsdp"
        self.ranks: list[Any] = []
        bundle = learner_bundle(config.ray_learner_cpus, config.ray_learner_gpus)
        # on the driver's node where it has room (as Ray places a lone actor), else on any node that does
        here = ray.get_runtime_context().get_node_id()
        self.placement_group = placement_group([bundle] * self.world, strategy="STRICT_PACK", _soft_target_node_id=here)
        """One bundle per rank, all on one node; removed by `shutdown` (the handle stays, to check that)."""
        self._placed = True
        try:
            if not self.placement_group.wait(placement_timeout_s):
                raise RuntimeError(self._unplaced(bundle, placement_timeout_s))
            threads = max(1, round(config.ray_learner_cpus))
            for index in range(self.world):
                actor = ray.remote(LearnerRank).options(
                    num_cpus=config.ray_learner_cpus,
                    num_gpus=config.ray_learner_gpus,
                    max_restarts=0,
                    scheduling_strategy=PlacementGroupSchedulingStrategy(self.placement_group, index),
                )
                self.ranks.append(actor.remote(rank, index, self.world, threads))
            master = self._call("address", ranks=[0])[0]
            self._call("setup", master, ray.put(setup_weights(model, version)), learner_state)
        except BaseException:
            self.shutdown()
            raise
        self.weights_ref = ray.put(play_weights(model)) if version > 0 else None
        """The rollout workers' weights in the object store, put once per update; None at version 0 of a new run:
        the starting weights, which every worker loads from `source` itself (a LoRA model's fresh adapters
        change nothing: their B matrices are zero)."""
        self.version = version

    def _unplaced(self, bundle: Mapping[str, float], timeout_s: float) -> str:
        import ray

        nodes = ", ".join(describe_resources(node["Resources"]) for node in ray.nodes() if node.get("Alive"))
        free = describe_resources(ray.available_resources())
        asked = f"{self.world} x {describe_resources(bundle)}"
        return (
            f"the {self.world} learner ranks' placement group ({asked}, all on one node: ray_learners x "
            f"ray_learner_cpus/gpus) was not placed within {timeout_s:g} s; the Ray cluster's nodes have "
            f"{nodes or 'none'}, of which {free} are free: free them (other jobs' actors hold the rest), lower "
            "those options, or add a node that holds them all"
        )

    def _call(self, method: str, *args: Any, ranks: Sequence[int] | None = None, per_rank: Sequence[Any] = ()) -> list:
        """`method(*args)` (then the rank's item of `per_rank`, if given) on `ranks` (default all), and their
        answers in rank order; a failure on any rank stops the group and raises `LearnerRankError`."""
        import ray
        from ray.exceptions import RayError

        chosen = list(range(self.world)) if ranks is None else list(ranks)
        rank_of = {}
        for i, rank in enumerate(chosen):
            extra = (per_rank[i],) if per_rank else ()
            rank_of[getattr(self.ranks[rank], method).remote(*args, *extra)] = rank
        answers: dict[int, Any] = {}
        pending = list(rank_of)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                answers[rank_of[done[0]]] = ray.get(done[0])
            except RayError as err:
                failed = {rank_of[done[0]]: err}
                late = ray.wait(pending, num_returns=len(pending), timeout=FAILURE_GRACE_S)[0] if pending else []
                for ref in late:
                    try:
                        ray.get(ref)
                    except RayError as other:
                        failed[rank_of[ref]] = other
                silent = sorted(set(chosen) - set(answers) - set(failed))
                self.shutdown()
                raise LearnerRankError(self._failure_report(method, failed, silent)) from err
        return [answers[rank] for rank in chosen]

    def _failure_report(self, method: str, failed: Mapping[int, BaseException], silent: Sequence[int]) -> str:
        """What failed (a rank that died first: the others' errors are often its echo), which ranks had not
        answered, what was done, where the run can resume, and the first failure's whole error."""
        from ray.exceptions import RayActorError

        order = sorted(failed, key=lambda rank: (not isinstance(failed[rank], RayActorError), rank))
        lines = []
        for rank in order:
            err = failed[rank]
            if isinstance(err, RayActorError):
                what = "died (its process exited or was killed)"
            else:
                cause = getattr(err, "cause", None) or err
                text = error_text(cause).strip()
                what = f"raised {type(cause).__name__}" + (f": {text.splitlines()[0]}" if text else "")
            lines.append(f"learner rank {rank} of {self.world} {what}, during `{method}`")
        if silent:
            lines.append(
                f"learner rank(s) {', '.join(map(str, silent))} had not answered {FAILURE_GRACE_S:g} s later (stuck, "
                "or waiting in a collective for a failed rank)"
            )
        stopped = "Every learner rank was stopped (a rank cannot rejoin a running group, so the run ends here)."
        if self.run_dir is None:
            resume = "Resume the run from its last checkpoint with: spiral-train --resume RUN_DIR"
        elif (checkpoint := latest_checkpoint(self.run_dir)) is None:
            resume = f"{self.run_dir} holds no checkpoint yet: start the run again."
        else:
            resume = f"The run's last checkpoint is {checkpoint}; continue from it with: "
            resume += f"spiral-train --resume {self.run_dir}"
        return "\n".join(
            [*lines, f"{stopped} {resume}", f"The error of rank {order[0]}:", error_text(failed[order[0]])]
        )

    def _rank0(self, method: str, *args: Any) -> Any:
        """Rank 0's answer to `method`; under FSDP every rank must take part (gathering shards is a collective)."""
        return self._call(method, *args, ranks=None if self.sharded else [0])[0]

    def update(self, turns: Sequence[Turn]) -> dict[str, float]:
        """One update on all ranks (rank r gets turns r, r+N, ...); then the driver's model gets the weights."""
        import ray

        shards = [list(turns[rank :: self.world]) for rank in range(self.world)]
        results = self._call("update", per_rank=shards)
        merged: dict[str, Any] = dict(results[0])
        for key in METRIC_SUMS:  # each rank reports its share of whole-batch sums
            if key in merged:
                merged[key] = sum(m.get(key, 0.0) for m in results)
        for key in METRIC_MAXES:
            if key in merged:
                merged[key] = max(m.get(key, 0.0) for m in results)
        load_weights(self.model, unpack(self._rank0("weights")))
        self.weights_ref = ray.put(play_weights(self.model))
        self.version += 1
        return merged

    def state_dict(self) -> dict:
        return self._rank0("state_dict")

    def load_state_dict(self, state: dict) -> None:
        self._call("load_state_dict", state)

    def shutdown(self) -> None:
        """Kill the ranks and remove their placement group (again: a no-op)."""
        import ray
        from ray.util.placement_group import remove_placement_group

        for rank in self.ranks:
            ray.kill(rank, no_restart=True)
        self.ranks = []
        if self._placed:
            remove_placement_group(self.placement_group)
            self._placed = False
