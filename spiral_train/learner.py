"""The policy-gradient update: PPO-style clipped ratio over a few passes of each batch of turns.

Every token of a turn carries that turn's advantage (the role's game return minus its RAE baseline). Two
probabilities of each sampled token meet here, and they differ whenever the sampler's numerics are not the
learner's (a bf16 vLLM engine against fp32 master weights under autocast, merged LoRA weights rounded to
bf16, or an async sample from older weights):

- the PPO ratio pi_theta / pi_old divides by the LEARNER's own logprob before this update (verl's
  `old_log_prob`). The first pass of an update runs at exactly those weights, so its logprobs are recorded
  there and serve as pi_old for every pass: the first ratio is exactly 1 on any hardware, with no extra
  forward pass;
- the sampler's logprob enters only through truncated importance sampling (TIS): each token's loss is weighted
  by min(pi_old / pi_sampler, `tis_cap`), which corrects the sampler/learner mismatch without letting one token
  dominate. `tis_cap` 0 turns the weight off.

The mismatch is measured at every update (`mismatch/*` metrics: mean and max |log pi_old - log pi_sampler|
over response tokens, and the share of tokens whose weight was truncated).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from spiral_train.config.views import LearnerSettings
from spiral_train.rollout.generation import autocast, positions
from spiral_train.rollout.records import Turn
from spiral_train.token_logprobs import token_logprobs


@dataclass
class Batch:
    """Turns laid out as [left-padded prompt | right-padded response], so all responses share columns."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor  # (rows, R): 1 on real response tokens
    sampler_logprobs: torch.Tensor  # (rows, R): what the generation backend reported for each sampled token
    advantages: torch.Tensor  # (rows,)
    response_width: int


def make_batch(turns: Sequence[Turn], pad_id: int, device: torch.device) -> Batch:
    prompt_width = max(len(t.prompt_ids) for t in turns)
    response_width = max(len(t.response_ids) for t in turns)
    rows = len(turns)
    ids = torch.full((rows, prompt_width + response_width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    response_mask = torch.zeros((rows, response_width), dtype=torch.float32)
    sampled = torch.zeros((rows, response_width), dtype=torch.float32)
    for row, t in enumerate(turns):
        p, r = len(t.prompt_ids), len(t.response_ids)
        ids[row, prompt_width - p : prompt_width] = torch.tensor(t.prompt_ids)
        ids[row, prompt_width : prompt_width + r] = torch.tensor(t.response_ids)
        mask[row, prompt_width - p : prompt_width + r] = 1
        response_mask[row, :r] = 1.0
        sampled[row, :r] = torch.tensor(t.logprobs)
    advantages = torch.tensor([t.advantage for t in turns], dtype=torch.float32)
    return Batch(
        ids.to(device),
        mask.to(device),
        response_mask.to(device),
        sampled.to(device),
        advantages.to(device),
        response_width,
    )


def response_logprobs(
    model: PreTrainedModel, batch: Batch, temperature: float, top_k: int = 0, top_p: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logprob of each response token under `model` at the sampling temperature, truncated to `top_k` /
    `top_p` as the sampler truncates (`generation.truncate_logits`), and the entropy of that distribution
    (both 0 on padding)."""
    out = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=positions(batch.attention_mask),
        logits_to_keep=batch.response_width + 1,
    )
    targets = batch.input_ids[:, -batch.response_width :]
    # its last position predicts nothing; padding positions are skipped
    return token_logprobs(out.logits, targets, temperature, top_k, top_p, mask=batch.response_mask.bool())


def clipped_pg_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, clip_eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token PPO loss -min(r*A, clip(r)*A) and whether the clip was active."""
    ratio = torch.exp(logp - old_logp)
    adv = advantages[:, None]
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv
    return -torch.minimum(unclipped, clipped), (clipped < unclipped).float()


def tis_weights(old_logp: torch.Tensor, sampler_logp: torch.Tensor, cap: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Truncated importance weights min(pi_old / pi_sampler, cap) per token (all 1 with `cap` 0), and where the
    cap bound."""
    if cap <= 0:
        return torch.ones_like(old_logp), torch.zeros_like(old_logp)
    ratio = torch.exp(old_logp - sampler_logp)
    return ratio.clamp(max=cap), (ratio > cap).float()


def length_buckets(lengths: Sequence[int], size: int, rng: random.Random) -> list[list[int]]:
    """Indices of `lengths` cut into micro-batches of at most `size`, each of turns of similar length (so little
    is padding), handed out in a random order; ties in length are broken at random."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    order.sort(key=lengths.__getitem__)  # stable: equal lengths keep their shuffled order
    chunks = [order[s : s + size] for s in range(0, len(order), size)]
    rng.shuffle(chunks)
    return chunks


METRIC_SUMS = ("loss", "clip_frac", "approx_kl", "entropy", "kl_ref", "mismatch/dlogp_mean", "mismatch/tis_truncated")
"""Metrics that are a share of whole-batch sums: a data-parallel group adds its ranks' values."""
METRIC_MAXES = ("mismatch/dlogp_max",)
"""Metrics that are a maximum over tokens: a data-parallel group takes its ranks' largest."""


class Learner:
    """Owns the optimizer and schedule; `update(turns)` runs `num_epochs` optimizer steps on one batch."""

    def __init__(
        self,
        model: PreTrainedModel,
        settings: LearnerSettings,
        device: torch.device,
        pad_id: int,
        ref_model: PreTrainedModel | None = None,
    ) -> None:
        self.model = model
        self.settings = settings
        self.device = device
        self.pad_id = pad_id
        self.ref_model = ref_model
        self.rng = random.Random(settings.seed + 1)
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            params, lr=settings.lr, betas=settings.adam_betas, weight_decay=settings.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)

    def _lr_factor(self, update: int) -> float:
        c = self.settings
        total = c.steps * c.num_epochs
        warm = c.warmup_steps * c.num_epochs
        if warm and update < warm:
            return (update + 1) / warm
        progress = min(1.0, (update - warm) / max(1, total - warm))
        if c.lr_schedule == "linear":
            return 1.0 - progress
        if c.lr_schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    def update(self, turns: Sequence[Turn]) -> dict[str, float]:
        """`num_epochs` optimizer steps on `turns`; the gradients are freed after each, so none outlive the update."""
        c = self.settings
        total_tokens, total_turns = self.global_counts(sum(len(t.response_ids) for t in turns), len(turns))
        if total_turns == 0:  # nothing to learn from (on any rank): no step, so the schedule does not move
            return {"loss": 0.0, "grad_norm": 0.0, "clip_frac": 0.0, "approx_kl": 0.0, "entropy": 0.0}
        self.model.train()
        if c.offload_optimizer:
            self._move_optimizer_state(self.device)
        if c.loss_aggregation == "token_mean":
            denominator = float(total_tokens)
        else:  # seq_sum_const (Dr. GRPO): a constant, so long answers are not down-weighted per token
            denominator = float(total_turns * c.max_new_tokens)
        sums = dict.fromkeys(("loss", "clip_frac", "approx_kl", "entropy", "kl_ref"), 0.0)
        mismatch = {"dlogp_sum": 0.0, "dlogp_max": 0.0, "truncated": 0.0}
        old: dict[int, torch.Tensor] = {}
        """Turn index -> the learner's logprobs of its response before this update (pi_old), from the first pass."""
        lengths = [len(t.prompt_ids) + len(t.response_ids) for t in turns]
        grad_norms = []
        for _ in range(c.num_epochs):
            self.optimizer.zero_grad(set_to_none=True)
            for chunk in self.micro_batches(length_buckets(lengths, c.micro_batch_size, self.rng)):
                self.backward([turns[i] for i in chunk], chunk, old, denominator, sums, mismatch)
            self.reduce_gradients()
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.max_grad_norm)
            grad_norms.append(float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm))  # DTensor: FSDP
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)  # gradients are not kept through rollout and evaluation
        if c.offload_optimizer:
            self._move_optimizer_state(torch.device("cpu"))
        self.model.eval()
        n = c.num_epochs
        total_tokens = max(1, total_tokens)
        return {
            "loss": sums["loss"] / n,
            "grad_norm": sum(grad_norms) / n,
            "clip_frac": sums["clip_frac"] / (total_tokens * n),
            "approx_kl": sums["approx_kl"] / (total_tokens * n),
            "entropy": sums["entropy"] / (total_tokens * n),
            "kl_ref": sums["kl_ref"] / (total_tokens * n),
            "lr": self.optimizer.param_groups[0]["lr"],
            "mismatch/dlogp_mean": mismatch["dlogp_sum"] / total_tokens,
            "mismatch/dlogp_max": mismatch["dlogp_max"],
            "mismatch/tis_truncated": mismatch["truncated"] / total_tokens,
        }

    def backward(
        self,
        chunk: list[Turn],
        indices: list[int],
        old: dict[int, torch.Tensor],
        denominator: float,
        sums: dict[str, float],
        mismatch: dict[str, float],
    ) -> None:
        """Accumulate one micro-batch's share of the loss gradient, and add its metric sums to `sums`.

        `indices` are the turns' places in the update's batch: a turn's first pass records its logprobs in
        `old` (and its sampler mismatch in `mismatch`), later passes divide by them.
        """
        c = self.settings
        batch = make_batch(chunk, self.pad_id, self.device)
        m = batch.response_mask
        with autocast(self.device, c.bf16):
            logp, entropy = response_logprobs(self.model, batch, c.temperature, c.top_k, c.top_p)
        first_pass = indices[0] not in old
        if first_pass:  # these weights are pi_old
            old_logp = logp.detach()
            for row, (i, turn) in enumerate(zip(indices, chunk)):
                old[i] = old_logp[row, : len(turn.response_ids)]
        else:
            old_logp = torch.zeros_like(logp)
            for row, i in enumerate(indices):
                old_logp[row, : old[i].shape[0]] = old[i]
        token_loss, clipped = clipped_pg_loss(logp, old_logp, batch.advantages, c.clip_eps)
        weights, truncated = tis_weights(old_logp, batch.sampler_logprobs, c.tis_cap)
        token_loss = token_loss * weights
        if first_pass:
            gap = (old_logp - batch.sampler_logprobs).abs() * m
            mismatch["dlogp_sum"] += float(gap.sum())
            mismatch["dlogp_max"] = max(mismatch["dlogp_max"], float(gap.max()))
            mismatch["truncated"] += float((truncated * m).sum())
        if self.ref_model is not None and c.kl_coef > 0:
            with torch.no_grad(), autocast(self.device, c.bf16):
                # the anchor's full tempered distribution: a sampled token it would truncate still has a logprob
                ref_logp, _ = response_logprobs(self.ref_model, batch, c.temperature)
            log_ratio = ref_logp - logp
            kl = torch.exp(log_ratio) - log_ratio - 1.0  # k3 estimator, >= 0
            token_loss = token_loss + c.kl_coef * kl
            sums["kl_ref"] += float((kl.detach() * m).sum())
        loss = (token_loss * m).sum() / denominator
        loss.backward()
        sums["loss"] += float(loss.detach())
        sums["clip_frac"] += float((clipped * m).sum())
        sums["approx_kl"] += float(((old_logp - logp.detach()) * m).sum())
        sums["entropy"] += float((entropy * m).sum())

    def _move_optimizer_state(self, device: torch.device) -> None:
        """Move AdamW's moments to `device` (to the CPU between updates with `offload_optimizer`; pinned there on
        CUDA machines so the copies back are fast). A no-op where they already are."""
        pin = device.type == "cpu" and torch.cuda.is_available()
        for state in self.optimizer.state.values():
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.dim() > 0 and value.device != device:
                    moved = value.to(device, non_blocking=True)
                    state[key] = moved.pin_memory() if pin else moved

    def micro_batches(self, chunks: list[list[int]]) -> list[list[int]]:
        """Hook: the micro-batches of one pass (turn indices); a sharded learner pads them with empty ones so every
        rank runs as many forward and backward passes (each is a collective there)."""
        return chunks

    def global_counts(self, tokens: int, turns: int) -> tuple[int, int]:
        """Response tokens and turns of the whole batch; a data-parallel learner sums them over its ranks."""
        return tokens, turns

    def reduce_gradients(self) -> None:
        """Hook before clipping: a data-parallel learner sums the gradients of its ranks here."""

    def state_dict(self) -> dict:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": self.rng.getstate(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.rng.setstate(state["rng"])
