"""What every generation backend is: the `Generator` protocol, its `Generation`, and the helpers the backends and
the learner share (the end-of-answer tokens, position ids, bf16 autocast)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class Generation:
    """One sampled answer."""

    text: str
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str  # "stop" (end-of-sequence token) or "length" (cut off at max_new_tokens)


class Generator(Protocol):
    def generate(
        self,
        prompt_ids: list[list[int]],
        *,
        temperature: float,
        max_new_tokens: int,
        generator: torch.Generator,
        top_k: int = 0,
        top_p: float = 1.0,
        stop_ids: Sequence[int] = (),
    ) -> list[Generation]:
        """Sample one answer per prompt at `temperature` from the `top_k` most likely tokens (0: all) and the
        smallest set of them whose probability reaches `top_p`; each token's logprob is under that truncated,
        renormalised distribution (what `learner.response_logprobs` recomputes with the same settings). An
        answer ends at the model's end-of-sequence tokens and at `stop_ids` (the prompt template's end of turn,
        `turn_end_ids`), the ending token included in `token_ids` and left out of `text`."""

    def sync_weights(self) -> None:
        """Make generation use the learner's current weights (a no-op where they share the model)."""

    def sleep(self) -> None:
        """Free accelerator memory for the learner's update; the next `sync_weights()` wakes the backend."""


MASKED_LOGIT = -1e9
"""What `truncate_logits` puts outside the kept set: finite, so a token the new policy would not keep gets a
ratio of 0 (never NaN) in a later PPO pass."""


def truncate_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """`logits` (tempered, last dimension the vocabulary) with every token outside the `top_k` largest (0:
    none dropped) and then outside the smallest set whose probability reaches `top_p` set to `MASKED_LOGIT`,
    in vLLM's and transformers' order (k, then p). The most likely token is always kept."""
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, MASKED_LOGIT)
    if top_p < 1.0:
        ordered, order = logits.sort(dim=-1, descending=True)
        probs = ordered.softmax(dim=-1)
        outside = (probs.cumsum(dim=-1) - probs) >= top_p  # the mass before a token already reaches top_p
        logits = logits.masked_fill(outside.scatter(-1, order, outside), MASKED_LOGIT)
    return logits


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on each row's first real token, whatever its left padding."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The token ids that end an answer: the model's generation config's, and the tokenizer's."""
    ids = model.generation_config.eos_token_id if model.generation_config is not None else None
    if ids is None:
        ids = tokenizer.eos_token_id
    if ids is None:
        raise ValueError("the tokenizer and model define no end-of-sequence token; set tokenizer.eos_token")
    ids = [ids] if isinstance(ids, int) else list(ids)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def stop_tokens(eos: Sequence[int], stop_ids: Sequence[int]) -> list[int]:
    """Where a backend stops an answer: the model's end-of-sequence ids (`eos_ids`), then the `stop_ids` a
    caller adds (`turn_end_ids`) that are not among them."""
    return [*eos, *(i for i in stop_ids if i not in eos)]


TURN_ENDS: dict[str, str | None] = {"qwen3": "<|im_end|>", "none": None}
"""The token that closes an assistant turn under each named prompt template (`spiral_envs.prompts.qwen3_prompt`
and the reasoning benchmarks' `qwen3` close every turn with `<|im_end|>`; "none" has no turns); "chat" is read
from the tokenizer's own template by `turn_end_ids`."""


def turn_end_ids(tokenizer: PreTrainedTokenizerBase, template: str) -> list[int]:
    """The token ids that end an answer under `template`, beyond the model's eos (`eos_ids`): a base model's
    generation config stops only at `<|endoftext|>`, while the qwen3 template closes a turn with `<|im_end|>`;
    sampling on past it, a model writes a fake next turn, and the move would be read from there.

    Raises ValueError, naming the token, when the template's end of turn is not one token of `tokenizer`."""
    if template == "chat":
        marker = _chat_turn_end(tokenizer)
    elif template in TURN_ENDS:
        marker = TURN_ENDS[template]
    else:
        raise ValueError(f"template {template!r} has no known end of turn; known: {[*TURN_ENDS, 'chat']}")
    if marker is None:
        return []
    ids = tokenizer.encode(marker, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(
            f"the {template!r} prompt template closes a turn with {marker!r}, which this tokenizer splits into "
            f"{len(ids)} tokens: a model cannot be stopped there. Use a tokenizer that has it as a special token "
            "(Qwen's do), or --template chat / none"
        )
    return ids


def _chat_turn_end(tokenizer: PreTrainedTokenizerBase) -> str | None:
    """The special token the tokenizer's chat template writes right after an assistant's words, if any."""
    words = "SPIRAL-TURN-END-PROBE"
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": words}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    after = text[text.rindex(words) + len(words) :]
    ids = tokenizer.encode(after, add_special_tokens=False)
    if ids and ids[0] in set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder):
        return tokenizer.convert_ids_to_tokens(ids[0])
    return None


def autocast(device: torch.device, bf16: bool) -> torch.autocast:
    """bf16 autocast on CUDA when asked (weights stay fp32); nothing on CPU.

    The sampler and the learner must use the same setting: their logprobs form the PPO ratio, and a bf16
    sampler against an fp32 learner makes that ratio noise.
    """
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda")
