"""Observation -> prompt text, by template name, on top of `spiral_envs`' templates."""

from __future__ import annotations

from collections.abc import Callable

import spiral_envs


def render_prompt(template: str, observation: str, apply_chat_template: Callable | None = None) -> str:
    """ "qwen3": the paper's template; "chat": the tokenizer's own; "none": the raw observation."""
    if template == "chat":
        if apply_chat_template is None:
            raise ValueError("template='chat' needs a tokenizer with a chat template")
        return spiral_envs.chat_prompt(observation, apply_chat_template)
    return spiral_envs.TEMPLATES[template](observation)
