"""Log-probabilities of the sampled tokens and the entropy, without a log-softmax over the whole vocabulary.

The learner needs, per response token, `log p(token)` under the tempered (and top-k / top-p truncated)
distribution, with its gradient, and the entropy as a metric. `log_softmax(logits)` materialises a float32
copy of the logits and keeps another for the backward pass: with Qwen3's 151,936-token vocabulary that is
0.6 MB per token each, more than the rest of a small model's update. `token_logprobs` instead walks the
positions in chunks of about `CHUNK_ELEMENTS` logits: the forward pass keeps one logsumexp per position, and
the backward pass recomputes each chunk's softmax and writes its gradient straight into the logits' gradient
(which the backward pass of the output layer needs anyway). Peak memory measured in
`benchmarks/logprob_memory.py` (docs/benchmarks.md).
"""

from __future__ import annotations

import torch

from spiral_train.generation.base import MASKED_LOGIT, truncate_logits

CHUNK_ELEMENTS = 1 << 22
"""Logits handled at once (16 MB in float32): 27 positions of Qwen3's vocabulary, 2,000 of the tiny model's."""


def token_logprobs(
    logits: torch.Tensor, targets: torch.Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """`log_softmax(truncate_logits(logits / temperature, top_k, top_p)).gather(targets)` and the entropy of
    that distribution, both float32 of `targets`' shape; the first differentiable with respect to `logits`.

    `logits` is [batch, positions, vocabulary] in any float dtype and `targets` [batch, positions] token ids;
    `logits` may hold one more position than `targets`, the model's prediction after the last token, which is
    ignored. Passing the model's logits whole, rather than sliced, saves the backward pass a full-size copy.
    """
    if logits.shape[1] not in (targets.shape[1], targets.shape[1] + 1):
        raise ValueError(f"logits {tuple(logits.shape)} do not match targets {tuple(targets.shape)}")
    return _TokenLogprobs.apply(logits, targets, float(temperature), int(top_k), float(top_p))


class _TokenLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, temperature, top_k, top_p):  # type: ignore[override]
        logp = torch.empty(targets.shape, dtype=torch.float32, device=logits.device)
        entropy = torch.empty_like(logp)
        for row, cols in _chunks(logits, targets):
            z = _tempered(logits[row, cols], temperature, top_k, top_p)
            lse = z.logsumexp(-1)
            logp[row, cols] = z.gather(-1, targets[row, cols, None]).squeeze(-1) - lse
            p = (z - lse[:, None]).exp_()
            entropy[row, cols] = lse - (p * z).sum(-1)  # -sum p log p, with log p = z - lse
        ctx.save_for_backward(logits, targets)
        ctx.settings = (temperature, top_k, top_p)
        ctx.mark_non_differentiable(entropy)
        return logp, entropy

    @staticmethod
    def backward(ctx, grad_logp, _grad_entropy):  # type: ignore[override]
        logits, targets = ctx.saved_tensors
        temperature, top_k, top_p = ctx.settings
        grad = torch.zeros_like(logits)  # the ignored last position, if any, gets no gradient
        for row, cols in _chunks(logits, targets):
            z = _tempered(logits[row, cols], temperature, top_k, top_p)
            g = grad_logp[row, cols, None].float()
            dz = z.softmax(-1).mul_(-g)  # d log p(t) / dz_j = [j == t] - p_j
            dz.scatter_add_(-1, targets[row, cols, None], g)
            if top_k > 0 or top_p < 1.0:
                dz.masked_fill_(z == MASKED_LOGIT, 0.0)  # truncated logits were set, not computed: no gradient
            grad[row, cols] = dz.div_(temperature)
        return grad, None, None, None, None


def _chunks(logits: torch.Tensor, targets: torch.Tensor) -> list[tuple[int, slice]]:
    """(row, positions) pieces of about `CHUNK_ELEMENTS` logits, covering the positions that predict `targets`."""
    step = max(1, CHUNK_ELEMENTS // max(1, logits.shape[-1]))
    width = targets.shape[1]
    return [
        (row, slice(start, min(start + step, width)))
        for row in range(targets.shape[0])
        for start in range(0, width, step)
    ]


def _tempered(chunk: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    return truncate_logits(chunk.float() / temperature, top_k, top_p)
