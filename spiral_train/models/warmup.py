"""The tiny model's warm-up: turns of uniformly random legal play, and imitating them (every legal answer of a
turn at once, `TinySpec.warmup_answers`), so the model starts as a valid but strategy-free player
(`spiral_train.models.tiny` says why)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from transformers import PreTrainedTokenizerFast, Qwen3ForCausalLM

import spiral_envs


class WarmupSettings(Protocol):
    """What the warm-up reads of a `spiral_train.models.tiny.TinySpec`."""

    env_ids: tuple[str, ...]
    template: str
    warmup_steps: int
    warmup_batch: int
    warmup_lr: float
    warmup_answers: int
    restate: bool


@dataclass(frozen=True)
class WarmupTurn:
    """One turn of random play: what the mover saw, what it says before its move, and its legal moves."""

    observation: str
    prefix: str
    legal: tuple[str, ...]

    def answers(self, rng: random.Random, count: int) -> list[str]:
        """Up to `count` distinct legal answers, drawn uniformly."""
        moves = self.legal if len(self.legal) <= count else rng.sample(self.legal, count)
        return [self.prefix + spiral_envs.boxed(move) for move in moves]


def random_play_turns(
    env_ids: tuple[str, ...], env_kwargs: dict[str, dict], rng: random.Random, games_per_env: int, restate: bool = False
) -> list[WarmupTurn]:
    """Every turn of uniformly random legal games; with `restate`, a turn's answers first restate the mover's
    card where its view has one (`restatement`)."""
    turns = []

    def recording_random_agent(observation: str, info: dict) -> str:
        legal = tuple(info["legal_actions"])
        if not legal:  # a TextArena game's free-talk turn: no move to imitate
            return "Nothing to add."
        turns.append(WarmupTurn(observation, restatement(info["view"]) if restate else "", legal))
        return spiral_envs.boxed(rng.choice(legal))

    for env_id in env_ids:
        env = spiral_envs.make(env_id, **env_kwargs.get(env_id, {}))
        agents = dict.fromkeys(env.possible_agents, recording_random_agent)
        for _ in range(games_per_env):
            spiral_envs.play_game(env, agents, seed=rng.randrange(2**31))
    return turns


def restatement(view: dict) -> str:
    """The private fact a player must read before it moves, said back: "Card: Q. " in Kuhn Poker; "" in a
    game whose view has no card (a board or an inventory is too long to say back in a few tokens)."""
    return f"Card: {view['card']}. " if "card" in view else ""


def imitate_random_play(
    model: Qwen3ForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    spec: WarmupSettings,
    env_kwargs: dict[str, dict],
    rng: random.Random,
    log=print,
) -> None:
    """Supervised warm-up on fresh random-play turns: learn the answer format, not a strategy (`imitate`)."""
    pool = random_play_turns(spec.env_ids, env_kwargs, rng, games_per_env=300, restate=spec.restate)
    imitate(model, tokenizer, pool, spec, rng, log)


def imitate(
    model: Qwen3ForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    pool: list[WarmupTurn],
    spec: WarmupSettings,
    rng: random.Random,
    log=print,
    after_step: Callable[[int], None] | None = None,
) -> None:
    """`spec.warmup_steps` AdamW steps on batches of `spec.warmup_batch` turns drawn from `pool`, each trained
    on its answers (`WarmupTurn.answers`, up to `spec.warmup_answers`); the learning rate warms up over 20 steps
    and decays linearly to 0. A turn's loss is the mean, over its answers, of each answer's negative
    log-likelihood summed over its tokens; the batch loss is the mean over its turns. `after_step(n)` is called
    after the n-th step (the model in train mode)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.warmup_lr, weight_decay=0.0)
    eos = tokenizer.eos_token_id
    model.train()
    started = time.monotonic()
    for step in range(spec.warmup_steps):
        rows, weights = [], []
        for turn in (pool[rng.randrange(len(pool))] for _ in range(spec.warmup_batch)):
            prompt = tokenizer(
                spiral_envs.render_prompt(spec.template, turn.observation), add_special_tokens=False
            ).input_ids
            answers = turn.answers(rng, spec.warmup_answers)
            for answer in answers:
                rows.append((prompt, [*tokenizer(answer, add_special_tokens=False).input_ids, eos]))
                weights.append(1.0 / len(answers))
        loss = weighted_answer_nll(model, rows, torch.tensor(weights), tokenizer.pad_token_id) / spec.warmup_batch
        lr = spec.warmup_lr * min(1.0, (step + 1) / 20) * (1 - step / spec.warmup_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 25 == 0 or step == spec.warmup_steps - 1:
            elapsed = time.monotonic() - started
            left = elapsed / (step + 1) * (spec.warmup_steps - step - 1)
            log(
                f"  warm-up {step + 1}/{spec.warmup_steps}: imitation loss {loss.item():.3f} per turn "
                f"({elapsed:.0f} s so far, about {_duration(left)} left)"
            )
        if after_step is not None:
            after_step(step + 1)
    model.eval()


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def weighted_answer_nll(
    model: Qwen3ForCausalLM, rows: list[tuple[list[int], list[int]]], weights: torch.Tensor, pad_id: int
) -> torch.Tensor:
    """Sum over rows of weight x the answer's negative log-likelihood given its prompt (summed over tokens)."""
    width = max(len(p) + len(a) for p, a in rows)
    ids = torch.full((len(rows), width), pad_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (p, a) in enumerate(rows):
        seq = p + a
        ids[row, : len(seq)] = torch.tensor(seq)
        labels[row, len(p) : len(seq)] = torch.tensor(a)
        mask[row, : len(seq)] = 1
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    targets = labels[:, 1:]
    token_nll = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1).clamp(min=0), reduction="none"
    ).view(targets.shape)
    per_row = (token_nll * (targets != -100)).sum(dim=1)
    return (per_row * weights).sum()
