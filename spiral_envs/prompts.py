"""Prompt templates: wrap an observation into the text a model continues.

These take and return plain strings, so `spiral_envs` needs no tokenizer: pass a tokenizer's own
`apply_chat_template` to `chat_prompt` if you want its format instead of the paper's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SYSTEM_INSTRUCTION = "You are playing a two-player zero-sum game. Make valid actions to win."
ANSWER_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def qwen3_prompt(observation: str) -> str:
    """The SPIRAL paper's `qwen3` game template, used for Qwen3-4B-Base (a base model: no chat template)."""
    return (
        "<|im_start|>user\n"
        f"{SYSTEM_INSTRUCTION}\n"
        f"Observation: {observation}\n"
        f"{ANSWER_INSTRUCTION}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def chat_messages(observation: str) -> list[dict[str, str]]:
    """The same request as a chat, for a model with its own chat template."""
    return [{"role": "user", "content": f"{SYSTEM_INSTRUCTION}\nObservation: {observation}\n{ANSWER_INSTRUCTION}"}]


def chat_prompt(observation: str, apply_chat_template: Callable[..., Any]) -> str:
    """Render with a tokenizer's template, e.g. `chat_prompt(obs, tokenizer.apply_chat_template)`."""
    return apply_chat_template(chat_messages(observation), tokenize=False, add_generation_prompt=True)


TEMPLATES: dict[str, Callable[[str], str]] = {"qwen3": qwen3_prompt, "none": lambda observation: observation}
"""Templates that need no tokenizer, by name ("none": the raw observation)."""

TEMPLATE_NAMES = (*TEMPLATES, "chat")
"""Every name `render_prompt` accepts: `TEMPLATES`, and "chat", the tokenizer's own chat template."""


def render_prompt(template: str, observation: str, apply_chat_template: Callable[..., Any] | None = None) -> str:
    """The prompt for `observation` under the template named `template` (one of `TEMPLATE_NAMES`); "chat"
    needs the tokenizer's `apply_chat_template`."""
    if template == "chat":
        if apply_chat_template is None:
            raise ValueError("template='chat' needs a tokenizer with a chat template")
        return chat_prompt(observation, apply_chat_template)
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; choose one of {list(TEMPLATE_NAMES)}")
    return TEMPLATES[template](observation)
