"""Measuring one real `Learner.update` to hold the plan against: random Qwen3 folders, synthetic turns, the peak.

Used by tests/train/plan/test_plan.py, benchmarks/plan_accuracy.py and the GPU check. The model is loaded the way a run
loads it (`models.loading.load_model`: fp32, gradient checkpointing, LoRA) and one update runs first, so AdamW's moments
exist when the measured update starts, as in every update of a run but the first. On CPU the peak is
`storage_peak.StoragePeak`'s; on CUDA `torch.cuda.max_memory_allocated` less what was allocated before.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import torch

from spiral_train.plan.storage_peak import StoragePeak, state_tensors


def random_qwen3(
    folder: str | Path,
    hidden: int,
    layers: int,
    vocab: int,
    heads: int | None = None,
    kv_heads: int | None = None,
    head_dim: int = 64,
    intermediate: int | None = None,
    seed: int = 0,
) -> Path:
    """A randomly initialised Qwen3 (tied embeddings) and a two-token tokenizer saved in `folder`: a model
    folder `--model` accepts, for memory and speed figures (its answers are noise)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    heads = heads or max(1, hidden // head_dim)
    config = Qwen3Config(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate or 3 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads or max(1, heads // 2),
        head_dim=head_dim,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    folder = Path(folder)
    Qwen3ForCausalLM(config).save_pretrained(folder)
    words = models.WordLevel({"<|endoftext|>": 0, "<|im_end|>": 1}, unk_token="<|endoftext|>")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(words), eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.save_pretrained(folder)
    return folder


def calibration_config(model: str, batch: int, prompt: int, answer: int, **options: Any) -> Any:
    """The `TrainConfig` a calibration update runs: the tiny preset on `model` on the CPU, one epoch, no KL term,
    micro-batches of `batch` turns of `prompt` + `answer` tokens (what the plan assumes too), then `options`."""
    from spiral_train.config import make_config  # the config validates devices through this package

    base = {"model": model, "device": "cpu", "micro_batch_size": batch, "max_new_tokens": answer}
    return make_config("tiny-cpu", {**base, "plan_prompt_tokens": prompt, "num_epochs": 1, "kl_coef": 0.0, **options})


def synthetic_turns(count: int, prompt_tokens: int, answer_tokens: int, vocab: int, seed: int = 0) -> list[Any]:
    """`count` turns of random tokens: answers of `answer_tokens`, prompts of `prompt_tokens` less 0-3 (so
    every micro-batch is padded, as real ones are: the attention then has a mask)."""
    from spiral_train.rollout.records import Turn

    rng = random.Random(seed)
    return [
        Turn(
            "KuhnPoker-v1",
            "Player 0",
            i,
            [rng.randrange(2, vocab) for _ in range(prompt_tokens - i % 4)],
            [rng.randrange(2, vocab) for _ in range(answer_tokens)],
            [-1.0] * answer_tokens,
            True,
            False,
            rng.choice([-1.0, 1.0]),
        )
        for i in range(count)
    ]


def measured_update_peak(config: Any, turns: list[Any]) -> int:
    """Bytes at the peak of one `Learner.update(turns)` of `config`'s model (after a first update), counting the
    learner's tensors (weights, gradients, AdamW state, reference, activations, ...)."""
    from spiral_train.config.views import LearnerSettings, ModelSource
    from spiral_train.learner import Learner
    from spiral_train.models.loading import load_model, reference_model, resolve_device

    device = resolve_device(config.device)
    model, tokenizer, source = load_model(ModelSource.from_config(config), device, log=lambda *_: None)
    settings = LearnerSettings.from_config(config)
    ref = reference_model(settings, model, source, device)
    learner = Learner(model, settings, device, tokenizer.pad_token_id, ref)
    learner.update(turns)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        learner.update(turns)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()
    existing = state_tensors(model, learner.optimizer)
    if isinstance(ref, torch.nn.Module):
        existing = itertools.chain(existing, state_tensors(ref))  # lazily: no list keeps freed gradients alive
    with StoragePeak(existing) as tracker:
        learner.update(turns)
    return tracker.peak
