"""The data-parallel `Learner`: gradients and loss normalisers summed over the torch.distributed group, so every
rank takes the one-process step (`learner_group` runs one per rank; `sharding.ShardedLearner` builds on it)."""

from __future__ import annotations

import torch
import torch.distributed as dist

from spiral_train.learner import Learner


class DataParallelLearner(Learner):
    """A `Learner` whose gradients and normalisers are summed over the torch.distributed group."""

    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    def global_counts(self, tokens: int, turns: int) -> tuple[int, int]:
        counts = torch.tensor([tokens, turns], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(counts)
        return int(counts[0].item()), int(counts[1].item())

    def reduce_gradients(self) -> None:
        params = [p for p in self.model.parameters() if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params]).to(self._comm_device())
        dist.all_reduce(flat)
        offset = 0
        for p in params:
            p.grad.copy_(flat[offset : offset + p.numel()].view_as(p))
            offset += p.numel()
