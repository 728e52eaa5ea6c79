"""Log-probabilities of the sampled tokens and the entropy, without a log-softmax over the whole vocabulary.

The learner needs, per response token, `log p(token)` under the tempered (and top-k / top-p truncated)
distribution, with its gradient, and the entropy as a metric. `log_softmax(logits)` materialises a float32
copy of the logits and keeps another for the backward pass: with Qwen3's 151,936-token vocabulary that is
0.6 MB per token each, more than the rest of a small model's update. `token_logprobs` instead walks the
real (non-padding) positions in chunks of about `CHUNK_ELEMENTS` logits: the forward pass keeps one logsumexp
per position, and the backward pass recomputes each chunk's softmax and writes its gradient straight into the
logits' gradient (which the backward pass of the output layer needs anyway). Peak memory measured in
`benchmarks/logprob_memory.py` (docs/benchmarks.md).
"""

from __future__ import annotations

import torch

from spiral_train.rollout.generation.base import MASKED_LOGIT, truncate_logits

CHUNK_ELEMENTS = {"cpu": 1 << 22, "cuda": 1 << 26}
"""Logits handled at once, by device type: 16 MB of float32 on a CPU (27 positions of Qwen3's vocabulary), 256 MB
on a GPU (441 positions), where each chunk is a few kernel launches from Python. Other devices: the CPU's."""


def token_logprobs(
    logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    top_k: int = 0,
    top_p: float = 1.0,
    mask: torch.Tensor | None = None,
    chunk_elements: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`log_softmax(truncate_logits(logits / temperature, top_k, top_p)).gather(targets)` and the entropy of
    that distribution, both float32 of `targets`' shape; the first differentiable with respect to `logits`.

    `logits` is [batch, positions, vocabulary] in any float dtype and `targets` [batch, positions] token ids;
    `logits` may hold one more position than `targets`, the model's prediction after the last token, which is
    ignored. Passing the model's logits whole, rather than sliced, saves the backward pass a full-size copy.
    `mask` (bool, `targets`' shape) marks the positions to compute: the others (padding) are 0 and get no
    gradient, and cost nothing. `chunk_elements`: logits per chunk (default `CHUNK_ELEMENTS` of the device).
    """
    if logits.shape[1] not in (targets.shape[1], targets.shape[1] + 1):
        raise ValueError(f"logits {tuple(logits.shape)} do not match targets {tuple(targets.shape)}")
    if mask is None:
        rows, cols = torch.ones(targets.shape, dtype=torch.bool, device=targets.device).nonzero(as_tuple=True)
    else:
        rows, cols = mask.nonzero(as_tuple=True)
    if chunk_elements is None:
        chunk_elements = CHUNK_ELEMENTS.get(logits.device.type, CHUNK_ELEMENTS["cpu"])
    step = max(1, chunk_elements // max(1, logits.shape[-1]))
    settings = (float(temperature), int(top_k), float(top_p), step)
    return _TokenLogprobs.apply(logits, targets, rows, cols, settings)


class _TokenLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, rows, cols, settings):  # type: ignore[override]
        temperature, top_k, top_p, step = settings
        logp = torch.zeros(targets.shape, dtype=torch.float32, device=logits.device)
        entropy = torch.zeros_like(logp)
        for start in range(0, rows.numel(), step):
            r, c = rows[start : start + step], cols[start : start + step]
            z = _tempered(logits[r, c], temperature, top_k, top_p)
            lse = z.logsumexp(-1)
            logp[r, c] = z.gather(-1, targets[r, c, None]).squeeze(-1) - lse
            p = (z - lse[:, None]).exp_()
            entropy[r, c] = lse - (p * z).sum(-1)  # -sum p log p, with log p = z - lse
        ctx.save_for_backward(logits, targets, rows, cols)
        ctx.settings = settings
        ctx.mark_non_differentiable(entropy)
        return logp, entropy

    @staticmethod
    def backward(ctx, grad_logp, _grad_entropy):  # type: ignore[override]
        logits, targets, rows, cols = ctx.saved_tensors
        temperature, top_k, top_p, step = ctx.settings
        grad = torch.zeros_like(logits)  # padding and the ignored last position get no gradient
        for start in range(0, rows.numel(), step):
            r, c = rows[start : start + step], cols[start : start + step]
            z = _tempered(logits[r, c], temperature, top_k, top_p)
            g = grad_logp[r, c, None].float()
            dz = z.softmax(-1).mul_(-g)  # d log p(t) / dz_j = [j == t] - p_j
            dz.scatter_add_(-1, targets[r, c, None], g)
            if top_k > 0 or top_p < 1.0:
                dz.masked_fill_(z == MASKED_LOGIT, 0.0)  # truncated logits were set, not computed: no gradient
            grad[r, c] = dz.div_(temperature).to(grad.dtype)
        return grad, None, None, None, None


def _tempered(chunk: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    return truncate_logits(chunk.float() / temperature, top_k, top_p)
