"""How many tokens one micro-batch and one generation call hold: the lengths the memory model multiplies by.

A micro-batch is padded to its longest turn, so the plan takes the worst: `micro_batch_size` rows of the
longest prompt plus `max_new_tokens`. Prompts are not answers (a game's history holds moves, not the model's
reasoning), so they are short; their bound is `plan_prompt_tokens` when given, else the longest prompt of a
few random games of each training env, counted by the model's tokenizer when its folder (or the tiny model's
cache) has one, else in characters / 3 (English BPE text averages about 4 characters a token: this errs long).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

CHARS_PER_TOKEN = 3.0
ESTIMATE_GAMES = 20
"""Random games played per env to find its longest prompt (a Kuhn Poker or TicTacToe game takes ~1 ms)."""


@dataclass(frozen=True)
class Workload:
    micro_batch: int
    prompt_tokens: int
    answer_tokens: int
    prompt_source: str
    """Where `prompt_tokens` came from, for the table."""
    generation_batch: int
    """Prompts in one generation call (transformers' KV cache holds this many sequences)."""

    @property
    def width(self) -> int:
        """Columns of a padded micro-batch: prompt then answer."""
        return self.prompt_tokens + self.answer_tokens

    @property
    def tokens(self) -> int:
        return self.micro_batch * self.width

    @property
    def logit_positions(self) -> int:
        """`logits_to_keep` of the learner's forward: the answer's positions and one more."""
        return self.answer_tokens + 1

    def describe(self) -> str:
        return (
            f"micro-batch of {self.micro_batch} x ({self.prompt_tokens:,} prompt + {self.answer_tokens:,} answer) "
            f"= {self.tokens:,} tokens; prompt bound: {self.prompt_source}"
        )


def workload(config: Any) -> Workload:
    """The lengths of `config` (a `TrainConfig`)."""
    if config.plan_prompt_tokens:
        prompt, source = config.plan_prompt_tokens, "--plan-prompt-tokens"
    else:
        prompt, source = estimate_prompt_tokens(config)
    batch = min(config.generation_batch_size, config.num_envs)
    return Workload(config.micro_batch_size, prompt, config.max_new_tokens, source, batch)


def estimate_prompt_tokens(config: Any) -> tuple[int, str]:
    """The longest prompt of `ESTIMATE_GAMES` uniformly random games of each training env, in tokens of the
    model's tokenizer (else characters / `CHARS_PER_TOKEN`, rounded up), and a line saying so. The "chat"
    template is measured as "qwen3" (both ChatML here)."""
    import spiral_envs

    template = "qwen3" if config.template == "chat" else config.template
    prompts: dict[str, str] = {}
    kwargs = config.game_kwargs()
    for env_id in config.env_ids:
        env = spiral_envs.make(env_id, **kwargs.get(env_id, {}))
        rng = random.Random(0)
        longest = [""]

        def agent(observation: Any, info: dict, rng: random.Random = rng, longest: list[str] = longest) -> str:
            prompt = spiral_envs.render_prompt(template, str(observation))
            if len(prompt) > len(longest[0]):
                longest[0] = prompt
            legal = info.get("legal_actions") or ["pass"]
            return spiral_envs.boxed(rng.choice(list(legal)))

        for game in range(ESTIMATE_GAMES):
            spiral_envs.play_game(env, dict.fromkeys(env.possible_agents, agent), seed=game)
        prompts[env_id] = longest[0]
    tokenizer = _tokenizer(config)
    if tokenizer is not None:
        counts = {k: len(tokenizer(v, add_special_tokens=False).input_ids) for k, v in prompts.items()}
        where = max(counts, key=counts.get)
        return max(1, counts[where]), f"longest {where} prompt of {ESTIMATE_GAMES} random games, by the tokenizer"
    where = max(prompts, key=lambda k: len(prompts[k]))
    chars = len(prompts[where])
    tokens = max(1, math.ceil(chars / CHARS_PER_TOKEN))
    return tokens, f"longest {where} prompt of {ESTIMATE_GAMES} random games, {chars:,} chars / {CHARS_PER_TOKEN:g}"


def _tokenizer(config: Any) -> Any:
    """The run's tokenizer when it is on this machine (the model folder, the Hugging Face cache, the built tiny
    model), else None."""
    from pathlib import Path

    try:
        from transformers import AutoTokenizer

        if config.model is None:
            from spiral_train.config.views import ModelSource
            from spiral_train.models.loading import tiny_spec
            from spiral_train.models.tiny import cache_root

            folder = cache_root() / tiny_spec(ModelSource.from_config(config)).key()
            return AutoTokenizer.from_pretrained(folder) if (folder / "config.json").exists() else None
        folder = Path(config.model).expanduser()
        if folder.is_dir():
            from spiral_train.models import lora

            folder = Path(lora.model_folder(folder))
            if not any(folder.glob("tokenizer*")):
                return None
            return AutoTokenizer.from_pretrained(folder)
        return AutoTokenizer.from_pretrained(config.model, local_files_only=True)
    except Exception:  # no tokenizer here (a config.json alone, a hub id not cached): count characters instead
        return None
