"""The pinned protocol of a reasoning evaluation (`Protocol`) and its prompt templates, apart from the sampling
code so that `spiral-eval` can build its options and check them without importing torch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
"""The answer instruction of the SPIRAL paper's prompts, the games' and the benchmarks' alike."""
TEMPLATES: dict[str, Callable[[str], str]] = {
    "qwen3": lambda text: f"<|im_start|>user\nQuestion: {text}\n{INSTRUCTION}<|im_end|>\n<|im_start|>assistant\n",
    "none": lambda text: f"{text}\n{INSTRUCTION}\n",
}
"""Prompt templates for a problem's text; "chat" (the tokenizer's own) is handled by `prompt_text`."""


@dataclass(frozen=True)
class Protocol:
    """How answers are sampled; the defaults are the paper's evaluation."""

    template: str = "qwen3"
    temperature: float = 0.6
    samples: int = 4
    max_new_tokens: int = 8192
    seed: int = 0
    top_p: float = 0.95
    top_k: int = 0

    def __post_init__(self) -> None:
        if self.template not in (*TEMPLATES, "chat"):
            raise ValueError(f"template={self.template!r}; choose one of {[*TEMPLATES, 'chat']}")
        if self.samples < 1 or self.max_new_tokens < 1 or self.temperature < 0:
            raise ValueError(f"{self}: samples and max_new_tokens must be >= 1 and temperature >= 0")
        if not 0.0 < self.top_p <= 1.0 or self.top_k < 0:
            raise ValueError(f"{self}: top_p must be in (0, 1] and top_k >= 0")
