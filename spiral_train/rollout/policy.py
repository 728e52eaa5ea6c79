"""A seat played by a language model (`ModelPolicy`: the learner, a frozen checkpoint, a pool snapshot), and the
one place such a seat is built (`model_policy`, and the frozen seats built on it)."""

from __future__ import annotations

import array
import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import AutoTokenizer

import spiral_envs
from spiral_train.config.views import GenerationSettings, Sampling
from spiral_train.models import lora
from spiral_train.rollout.generation import Generation, Generator, HFGenerator, turn_end_ids

PROMPT_MEMO = 20_000
"""Prompt texts whose token ids a `ModelPolicy` keeps (as int32 arrays: about 80 MB at 1,000 tokens a
prompt); past that it starts over."""


@dataclass
class ModelPolicy:
    """A seat played by a language model (the learner, a frozen checkpoint, a pool snapshot)."""

    generator: Generator
    tokenizer: Any
    template: str
    temperature: float
    max_new_tokens: int
    torch_rng: torch.Generator
    truncated_is_invalid: bool = True
    """An answer cut off at `max_new_tokens` is played as no move at all (see `TrainConfig`)."""
    top_k: int = 0
    top_p: float = 1.0
    """Sampling truncation (see `Generator.generate`); the defaults sample from every token."""
    _prompt_memo: dict[str, array.array] = field(default_factory=dict, init=False, repr=False, compare=False)
    _stop_ids: list[int] | None = field(default=None, init=False, repr=False, compare=False)

    def sample(self, prompts: list[list[int]]) -> list[Generation]:
        """One answer per tokenised prompt, with this seat's sampling settings and RNG; an answer ends where the
        template ends a turn (`generation.turn_end_ids`) as well as at the model's end of sequence."""
        if self._stop_ids is None:
            self._stop_ids = turn_end_ids(self.tokenizer, self.template)
        return self.generator.generate(
            prompts,
            temperature=self.temperature,
            max_new_tokens=self.max_new_tokens,
            generator=self.torch_rng,
            top_k=self.top_k,
            top_p=self.top_p,
            stop_ids=self._stop_ids,
        )

    def prompt_ids(self, observations: Sequence[str]) -> list[list[int]]:
        """Each observation's prompt under the template, as token ids (each prompt its own list, free to edit).

        Prompts recur (every game of a batch opens alike, and Kuhn Poker has few first positions), so the
        ids of each prompt text are kept, up to `PROMPT_MEMO` of them, and the new ones are tokenised in one
        batched call.
        """
        chat = getattr(self.tokenizer, "apply_chat_template", None)
        texts = [spiral_envs.render_prompt(self.template, observation, chat) for observation in observations]
        memo = self._prompt_memo
        new = [text for text in dict.fromkeys(texts) if text not in memo]
        if new:
            if len(memo) + len(new) > PROMPT_MEMO:
                memo.clear()
            ids = self.tokenizer(new, add_special_tokens=False).input_ids
            memo.update(zip(new, (array.array("i", i) for i in ids), strict=True))
        return [memo[text].tolist() for text in texts]


def model_policy(generator: Generator, tokenizer: Any, sampling: Sampling, rng: torch.Generator) -> ModelPolicy:
    """A model seat: `generator`'s answers to prompts made and sampled as `sampling` says, drawn from `rng`."""
    s = sampling
    return ModelPolicy(
        generator, tokenizer, s.template, s.temperature, s.max_new_tokens, rng, s.truncated_is_invalid, s.top_k, s.top_p
    )


def frozen_checkpoint_policy(
    folder: str, device: torch.device, rng: torch.Generator, sampling: Sampling, generation: GenerationSettings
) -> ModelPolicy:
    """The seat of a fixed checkpoint opponent (`opponent=DIR`): its model frozen on `device` (a LoRA checkpoint
    merged into its base), sampled as `sampling` says through transformers."""
    folder = lora.model_folder(folder)  # a checkpoint folder names its model/ subfolder
    model = lora.load_frozen(folder, device)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    generator = HFGenerator(model, tokenizer, generation.generation_batch_size, generation.bf16)
    return model_policy(generator, tokenizer, sampling, rng)


def frozen_copy(
    policy: ModelPolicy, model: torch.nn.Module, batch_size: int, bf16: bool, device: torch.device | None = None
) -> ModelPolicy:
    """A seat like `policy` (same tokenizer, sampling settings and RNG) that plays a frozen copy of `model`,
    on `device` (default: where `model` is), through transformers: the opponent pool's one extra model."""
    frozen = copy.deepcopy(model).eval()
    frozen.requires_grad_(False)
    for param in frozen.parameters():
        param.grad = None  # the learner's gradients, copied along; never needed here
    if device is not None:
        frozen = frozen.to(device)
    return dataclasses.replace(policy, generator=HFGenerator(frozen, policy.tokenizer, batch_size, bf16))
