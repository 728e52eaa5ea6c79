"""Generation backends: prompts in; sampled text, token ids, per-token logprobs and finish reason out.

The trainer only talks to `Generator`, so a faster engine (vLLM) can replace the transformers backend
without touching the collector or the learner. The behaviour logprobs returned here are the denominators of
the PPO ratio, so a backend must return the logprob of each sampled token under the distribution it
actually sampled from (after temperature and `top_k` / `top_p` truncation, renormalised).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from spiral_train.rollout.generation.base import (
    Generation,
    Generator,
    autocast,
    eos_ids,
    positions,
    truncate_logits,
    turn_end_ids,
)
from spiral_train.rollout.generation.hf import HFGenerator

if TYPE_CHECKING:
    from spiral_train.config.views import GenerationSettings

__all__ = [
    "Generation",
    "Generator",
    "HFGenerator",
    "autocast",
    "eos_ids",
    "make_generator",
    "positions",
    "truncate_logits",
    "turn_end_ids",
]


def make_generator(
    settings: GenerationSettings, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> Generator:
    """The backend `settings.generator` names, sampling from (or kept in step with) the learner's `model`."""
    if settings.generator == "vllm":
        from spiral_train.rollout.generation.vllm import VLLMGenerator  # imports vLLM: only when it is chosen

        return VLLMGenerator(
            model,
            tokenizer,
            max_model_len=settings.vllm_max_model_len,
            kv_cache_mb=settings.vllm_kv_cache_mb,
            gpu_memory_utilization=settings.vllm_gpu_memory_utilization,
            max_num_seqs=settings.generation_batch_size,
            bf16=settings.bf16,
            seed=settings.seed,
        )
    return HFGenerator(model, tokenizer, settings.generation_batch_size, settings.bf16)
