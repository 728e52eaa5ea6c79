"""Bytes per row for each part of a run: the learner's update (as a sequence of moments), generation, engines.

The learner's update is modelled moment by moment, as the code runs it (`learner.Learner.update`, transformers'
Qwen3 forward, `token_logprobs`), and its peak is the largest moment:

- forward end: the saved activations of every layer (or, with gradient checkpointing, one hidden state per
  layer and token), the logits of `logits_to_keep` positions and `token_logprobs`' chunk temporaries;
- reference forward (with a KL term and no LoRA): the same, plus the reference's logits and KV cache;
- logits backward: the logits and their same-size gradient (`token_logprobs` allocates it);
- head backward: the gradient of the logits and of the output head's weight;
- layer backward: the saved activations (with checkpointing: one layer recomputed), the tied head's gradient
  waiting for the embedding's, and the backward pass's working set;
- backward end: a tied embedding's two gradients and their sum;
- optimizer step: AdamW's temporaries (CUDA: one fp32 copy of the trainable parameters, `foreach`; CPU: two of
  the largest tensor); with ddp ranks, the flat copy of the gradients that is all-reduced.

Gradients are counted whole in every moment (the last micro-batch of a pass finds them accumulated) and gone
between updates (`zero_grad(set_to_none=True)` after the step); AdamW's two moments are counted (a run's
second update finds them). Activations per token and layer follow the tensors autograd saves (measured with
`storage_peak.StoragePeak` on CPU in fp32: docs/scaling.md); under bf16 autocast each Linear casts its input
and its weight to bf16 (weights requiring grad are cached until the forward ends), the residual stream and
RMSNorm stay fp32. Padding masks are assumed (real batches have them): transformers then repeats the KV heads
for SDPA and SDPA keeps a float copy of the mask per layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from spiral_train.plan.shapes import ModelShape
from spiral_train.plan.workload import Workload

FP32 = 4
BF16 = 2
GiB = 2**30
RUNTIME_BYTES = GiB // 2
"""Per process on a device: the CUDA context and the interpreter's own (an estimate, not measured here)."""

ROWS = (
    "weights",
    "gradients",
    "optimizer state",
    "reference model",
    "bf16 weight copies",
    "activations",
    "logits",
    "temporaries",
    "engine weights",
    "KV cache",
    "merged LoRA weights",
    "object store",
    "opponent model",
    "policy average",
    "runtime",
)
"""Table rows in order; a column holds some of them."""

LEARNER_ROWS = ROWS[:8]
"""The learner's own tensors: what `torch.cuda.max_memory_allocated` counts for one update."""


@dataclass(frozen=True)
class LearnerSetup:
    """What the update's memory depends on, beyond the model and the lengths."""

    autocast: bool
    """bf16 autocast (`bf16` on a CUDA device)."""
    checkpointing: bool
    reference: int
    """Bytes per parameter of the frozen KL reference copy; 0 for none (no KL term, or LoRA's adapters-off view)."""
    shards: int = 1
    """FSDP ranks sharing weights, gradients and AdamW state (1: no sharding)."""
    ddp_world: int = 1
    """ddp ranks: more than 1 adds the all-reduced flat gradient copy."""
    cuda: bool = True
    """AdamW's `foreach` path (CUDA) or the per-tensor one (CPU)."""
    chunk_elements: int = 1 << 22
    """`token_logprobs.CHUNK_ELEMENTS`: logits handled at once."""


@dataclass(frozen=True)
class Moment:
    name: str
    rows: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def layer_activation_bytes(s: ModelShape, w: Workload, autocast: bool, kv_cache: bool) -> int:
    """What autograd saves for one decoder layer of one micro-batch (with `kv_cache`: the forward's KV cache
    too, which transformers keeps when `use_cache` is on, i.e. without gradient checkpointing).

    With LoRA the norms' weights are frozen, so their normalised inputs (kept only for the weights' gradient)
    are not saved."""
    h, q, kv, inter, tokens = s.hidden, s.q_width, s.kv_width, s.intermediate, w.tokens
    e = BF16 if autocast else FP32
    f = FP32
    normed = 0 if s.lora else 1  # a norm's normalised input, saved for its weight's gradient
    if not autocast:
        norms = 2 * (1 + normed) * h
        attention = (2 + normed) * q + (1 + normed) * kv if s.qk_norm else q  # queries; keys before repeating
        attention += 3 * q  # repeated keys and values, SDPA output
        per_token = f * (2 * h + norms + attention + 4 * inter + (2 * kv if kv_cache else 0))
    else:
        norms = (normed * f * h + 3 * e * h) + (normed * f * h + 2 * e * h)  # bf16 casts for q/k/v and gate/up
        residual = 2 * f * h
        queries_keys = (f + (1 + normed) * e) * q + (f + normed * e) * kv + e * q if s.qk_norm else 2 * e * q
        attention = queries_keys + 2 * e * q  # repeated values, SDPA output
        per_token = norms + residual + attention + 4 * e * inter + ((f + e) * kv if kv_cache else 0)
    per_token += f * (2 + 2 * s.heads + s.kv_heads)  # RMSNorm scales, SDPA logsumexp
    per_token += e * s.lora_rank * s.lora_linears_per_layer  # LoRA's A outputs
    mask = w.micro_batch * w.width * w.width * e  # SDPA's float copy of the padding mask
    return tokens * per_token + mask


def update_moments(s: ModelShape, w: Workload, c: LearnerSetup) -> list[Moment]:
    """The update's moments on one device (an FSDP rank holds its shard; every rank has one micro-batch)."""
    f, e = FP32, (BF16 if c.autocast else FP32)
    n = c.shards
    tokens, batch, width, keep = w.tokens, w.micro_batch, w.width, w.logit_positions
    h, vocab = s.hidden, s.vocab
    base = s.params + (s.trainable if s.lora else 0)
    static = {
        "weights": base * f // n,
        "gradients": s.trainable * f // n,
        "optimizer state": 2 * s.trainable * f // n,
        "reference model": s.params * c.reference // n,
    }
    gathered = (s.root_params + 2 * s.layer_params) * f if n > 1 else 0  # FSDP: root kept, a block and the next
    block_grads = s.layer_params * f if n > 1 and not s.lora else 0

    copies_all = s.linear_params * BF16 if c.autocast else 0
    copies_head = vocab * h * BF16 if c.autocast else 0
    copies_layer = s.layer_linear_params * BF16 if c.autocast else 0
    if c.checkpointing:
        # full fine-tuning: autocast caches every cast weight until the forward ends; LoRA's frozen base is
        # cast per use and checkpointing drops what a layer saved
        copies_fwd = copies_head if s.lora else copies_all
        copies_bwd, copies_in_layer = copies_head, copies_layer
    else:
        copies_fwd = copies_bwd = copies_in_layer = copies_all

    layer_fwd = layer_activation_bytes(s, w, c.autocast, kv_cache=not c.checkpointing)
    layer_bwd = layer_activation_bytes(s, w, c.autocast, kv_cache=False)
    checkpoints = s.layers * tokens * h * f
    shared = 2 * tokens * s.head_dim * f + 2 * batch * width * width  # rotary cos/sin, boolean masks
    head_input = batch * keep * h * e
    acts_fwd = (checkpoints if c.checkpointing else s.layers * layer_fwd) + 3 * tokens * h * f + shared + head_input
    acts_bwd = (checkpoints if c.checkpointing else s.layers * layer_bwd) + 2 * tokens * h * f + shared + head_input
    logits = batch * keep * vocab * e
    chunk = min(max(1, c.chunk_elements // vocab), batch * w.answer_tokens) * vocab  # response positions of any rows
    chunk_fwd = (3 + (1 if e != f else 0)) * chunk * f
    chunk_bwd = 3 * chunk * f

    head_trainable = not s.lora
    head_grad = vocab * h * (f + (e if c.autocast else 0)) if head_trainable else 0
    tied_buffer = vocab * h * f if head_trainable and s.tied else 0
    embed_end = (3 if s.tied else 1) * vocab * h * f if head_trainable else 0
    bwd_work = tokens * (s.intermediate * e + h * f) + tokens * h * f  # a layer's gradients + the incoming one
    recompute = layer_bwd if c.checkpointing else 0

    def moment(name: str, weights_extra: int = 0, **rows: int) -> Moment:
        values = {**static, "weights": static["weights"] + weights_extra}
        values.update({k.replace("_", " "): v for k, v in rows.items()})
        return Moment(name, values)

    moments = [
        moment(
            "forward end",
            gathered,
            bf16_weight_copies=copies_fwd,
            activations=acts_fwd,
            logits=logits,
            temporaries=chunk_fwd,
        ),
        moment(
            "logits backward",
            gathered,
            bf16_weight_copies=copies_bwd,
            activations=acts_bwd,
            logits=2 * logits,
            temporaries=chunk_bwd,
        ),
        moment(
            "head backward",
            gathered,
            bf16_weight_copies=copies_bwd,
            activations=acts_bwd,
            logits=logits,
            temporaries=head_grad + batch * keep * h * f,
        ),
        moment(
            "layer backward",
            gathered,
            bf16_weight_copies=copies_in_layer,
            activations=acts_bwd + recompute + bwd_work,
            temporaries=tied_buffer + block_grads,
        ),
        moment("backward end", gathered, temporaries=embed_end),
    ]
    if c.reference:
        layer_ref = tokens * (2 * s.intermediate + 4 * h) * e
        ref_cache = s.layers * tokens * s.kv_width * (f + e)
        policy = acts_bwd if not c.checkpointing else acts_fwd
        moments.insert(
            1,
            moment(
                "reference forward",
                gathered,
                bf16_weight_copies=copies_fwd,
                activations=policy + layer_ref + ref_cache,
                logits=2 * logits,
                temporaries=chunk_fwd,
            ),
        )
    step = s.trainable * f // n if c.cuda else 2 * s.largest_trainable * f
    moments.append(moment("optimizer step", temporaries=step))
    if c.ddp_world > 1 and n == 1:
        moments.append(moment("gradient all-reduce", temporaries=s.trainable * f))
    return moments


def update_peak(s: ModelShape, w: Workload, c: LearnerSetup) -> Moment:
    """The largest moment of `update_moments`."""
    return max(update_moments(s, w, c), key=lambda m: m.total)


def hf_generation_bytes(s: ModelShape, w: Workload, autocast: bool) -> dict[str, int]:
    """transformers' `generate` on `generation_batch` prompts: its KV cache (every layer, prompt + answer) and
    a working set (the prefill's widest layer, a few copies of the step's logits). An estimate, not measured."""
    e = BF16 if autocast else FP32
    seqs = w.generation_batch
    kv = seqs * w.width * s.layers * 2 * s.kv_width * e
    work = 3 * seqs * s.vocab * FP32 + seqs * w.prompt_tokens * (2 * s.intermediate + 4 * s.hidden) * e
    return {"KV cache": kv, "temporaries": work}


def kv_bytes_per_token(s: ModelShape, dtype_bytes: int) -> int:
    """KV cache bytes one token costs an engine: keys and values of every layer."""
    return s.layers * 2 * s.kv_width * dtype_bytes
