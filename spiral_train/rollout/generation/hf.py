"""The transformers backend: batched sampling with a key-value cache on the learner's own model (CPU or CUDA)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from spiral_train.rollout.generation.base import Generation, autocast, eos_ids, positions, stop_tokens, truncate_logits


def _cache_kwarg(model: PreTrainedModel) -> str:
    """transformers 5 renamed `past_key_values` to `cache`; accept both so either release works.

    A peft (LoRA) wrapper's forward takes **kwargs and passes them on, so ask the model inside it.
    """
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"


def left_pad(sequences: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask, left-padded so every prompt ends at the same column."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
        mask[row, width - len(seq) :] = 1
    return ids.to(device), mask.to(device)


class HFGenerator:
    """Batched sampling with a key-value cache on a transformers causal LM, on CPU or CUDA.

    It samples from the learner's own model object, so its weights are always the learner's latest.
    """

    def __init__(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, max_batch_size: int = 64, bf16: bool = False
    ) -> None:
        self.model = model
        self.bf16 = bf16
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.eos_ids = eos_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        self._cache_kwarg = _cache_kwarg(model)

    def sync_weights(self) -> None:
        pass

    def sleep(self) -> None:
        pass

    @torch.no_grad()
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
        out: list[Generation] = []
        stops = stop_tokens(self.eos_ids, stop_ids)
        for start in range(0, len(prompt_ids), self.max_batch_size):
            batch = prompt_ids[start : start + self.max_batch_size]
            out.extend(self._generate_batch(batch, temperature, max_new_tokens, generator, top_k, top_p, stops))
        return out

    def _generate_batch(
        self,
        prompts: list[list[int]],
        temperature: float,
        max_new_tokens: int,
        generator: torch.Generator,
        top_k: int,
        top_p: float,
        stops: list[int],
    ) -> list[Generation]:
        was_training = self.model.training
        self.model.eval()
        device = next(self.model.parameters()).device
        ids, mask = left_pad(prompts, self.pad_id, device)
        batch = len(prompts)
        eos = torch.tensor(stops, device=device)
        tokens = torch.full((batch, max_new_tokens), self.pad_id, dtype=torch.long, device=device)
        logprobs = torch.zeros((batch, max_new_tokens), dtype=torch.float32, device=device)
        lengths = torch.full((batch,), max_new_tokens, dtype=torch.long, device=device)
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        pos = positions(mask)
        cache = None
        step_ids, step_pos = ids, pos
        for t in range(max_new_tokens):
            kwargs = {self._cache_kwarg: cache} if cache is not None else {}
            with autocast(device, self.bf16):
                output = self.model(
                    input_ids=step_ids,
                    attention_mask=mask,
                    position_ids=step_pos,
                    use_cache=True,
                    logits_to_keep=1,
                    **kwargs,
                )
            cache = output.get("cache", None) or output.get("past_key_values", None)
            logits = output.logits[:, -1, :].float()
            token, logprob = sample(logits, temperature, generator, top_k, top_p)
            token = torch.where(done, torch.full_like(token, self.pad_id), token)
            tokens[:, t] = token
            logprobs[:, t] = torch.where(done, torch.zeros_like(logprob), logprob)
            finished_now = ~done & torch.isin(token, eos)
            lengths = torch.where(finished_now, torch.full_like(lengths, t + 1), lengths)
            done = done | finished_now
            if bool(done.all()):
                break
            mask = torch.cat([mask, torch.ones((batch, 1), dtype=mask.dtype, device=device)], dim=1)
            step_ids = token[:, None]
            step_pos = step_pos[:, -1:] + 1
        if was_training:
            self.model.train()
        results = []
        for row in range(batch):
            n = int(lengths[row])
            row_ids = tokens[row, :n].tolist()
            stopped = bool(done[row])
            text_ids = row_ids[:-1] if stopped else row_ids
            results.append(
                Generation(
                    text=self.tokenizer.decode(text_ids, skip_special_tokens=False),
                    token_ids=row_ids,
                    logprobs=logprobs[row, :n].tolist(),
                    finish_reason="stop" if stopped else "length",
                )
            )
        return results


def sample(
    logits: torch.Tensor, temperature: float, generator: torch.Generator, top_k: int = 0, top_p: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sampled token per row and its logprob under the tempered distribution, truncated to `top_k` / `top_p`
    (`truncate_logits`) and renormalised; greedy at temperature 0."""
    if not torch.isfinite(logits).all():
        raise FloatingPointError(
            "the model produced NaN or infinite logits: training diverged (lower --lr, or turn off --bf16)"
        )
    if temperature <= 0:
        logp = torch.log_softmax(logits, dim=-1)
        token = logp.argmax(dim=-1)
        return token, logp.gather(-1, token[:, None]).squeeze(-1)
    logp = torch.log_softmax(truncate_logits(logits / temperature, top_k, top_p), dim=-1)
    token = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(-1)
    return token, logp.gather(-1, token[:, None]).squeeze(-1)
