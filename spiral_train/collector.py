"""Play many games at once, answering all pending model turns of all live games in one batched call.

One tick: every live game is advanced through its scripted seats (reference agents answer instantly) until
a model seat must answer; then each model policy answers all of its pending prompts, both roles and all
games together, in one `generate` call. Sampling dominates the cost of a step, and a batch of 64 costs
little more than a batch of 1, so this is where the collector's speed comes from.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from pettingzoo import AECEnv

import spiral_envs
from spiral_train.generation import Generator
from spiral_train.prompts import render_prompt


@dataclass
class ModelPolicy:
    """A seat played by a language model; `trainable` seats produce training samples."""

    generator: Generator
    tokenizer: Any
    template: str
    temperature: float
    max_new_tokens: int
    torch_rng: torch.Generator
    trainable: bool = True
    truncated_is_invalid: bool = True
    """An answer cut off at `max_new_tokens` is played as no move at all (see `TrainConfig`)."""

    def prompt_ids(self, observation: str) -> list[int]:
        text = render_prompt(self.template, observation, getattr(self.tokenizer, "apply_chat_template", None))
        return self.tokenizer(text, add_special_tokens=False).input_ids


Seat = ModelPolicy | Callable[[str, dict], str]


@dataclass
class Turn:
    """One answer of a trainable seat: a training sample."""

    env_id: str
    role: str
    game: int
    prompt_ids: list[int]
    response_ids: list[int]
    logprobs: list[float]
    valid: bool
    truncated: bool
    advantage: float = 0.0


@dataclass
class Match:
    env_id: str
    seed: int
    seats: dict[str, Seat]


@dataclass
class GameResult:
    index: int
    match: Match
    returns: dict[str, float]
    outcome: dict[str, Any]
    turns: list[Turn]
    transcript: list[dict[str, Any]]


@dataclass
class _Live:
    index: int
    match: Match
    env: AECEnv
    returns: dict[str, float]
    turns: list[Turn] = field(default_factory=list)
    transcript: list[dict[str, Any]] = field(default_factory=list)
    outcome: dict[str, Any] = field(default_factory=dict)


class Collector:
    """Plays lists of `Match`es with up to `num_envs` games in flight."""

    def __init__(self, num_envs: int, env_kwargs: dict[str, dict[str, Any]] | None = None) -> None:
        self.num_envs = num_envs
        self.env_kwargs = env_kwargs or {}
        self._idle: dict[str, list[AECEnv]] = {}

    def play(self, matches: Sequence[Match], keep_transcripts: bool = True) -> list[GameResult]:
        pending = deque(enumerate(matches))
        live: list[_Live] = []
        results: list[GameResult | None] = [None] * len(matches)
        while pending or live:
            while pending and len(live) < self.num_envs:
                index, match = pending.popleft()
                env = self._take_env(match.env_id)
                env.reset(seed=match.seed)
                live.append(_Live(index, match, env, dict.fromkeys(env.possible_agents, 0.0)))
            requests: dict[int, tuple[ModelPolicy, list[tuple[_Live, str, str]]]] = {}
            waiting = []
            for game in live:
                request = self._advance(game, keep_transcripts)
                if request is None:
                    results[game.index] = self._finish(game)
                    continue
                policy, agent, obs = request
                requests.setdefault(id(policy), (policy, []))[1].append((game, agent, obs))
                waiting.append(game)
            for policy, batch in requests.values():
                self._answer(policy, batch, keep_transcripts)
            live = waiting
        return [r for r in results if r is not None]

    def _advance(self, game: _Live, keep: bool) -> tuple[ModelPolicy, str, str] | None:
        """Step scripted seats until a model seat must answer (returned) or the game is over (None)."""
        env = game.env
        while env.agents:
            agent = env.agent_selection
            obs, reward, term, trunc, info = env.last()
            game.returns[agent] += float(reward)
            if term or trunc:
                game.outcome = {k: v for k, v in info.items() if k != "legal_actions"}
                env.step(None)
                continue
            seat = game.match.seats[agent]
            if isinstance(seat, ModelPolicy):
                return seat, agent, str(obs)
            answer = seat(str(obs), info)
            if keep:
                game.transcript.append({"role": agent, "observation": str(obs), "answer": answer})
            env.step(answer)
        return None

    def _answer(self, policy: ModelPolicy, batch: list[tuple[_Live, str, str]], keep: bool) -> None:
        prompts = [policy.prompt_ids(obs) for _, _, obs in batch]
        generations = policy.generator.generate(
            prompts, temperature=policy.temperature, max_new_tokens=policy.max_new_tokens, generator=policy.torch_rng
        )
        for (game, agent, obs), prompt, gen in zip(batch, prompts, generations):
            truncated = gen.finish_reason == "length"
            game.env.step("" if truncated and policy.truncated_is_invalid else gen.text)
            info = game.env.infos.get(agent, {})
            valid = not info.get("invalid_move", False)
            if keep:
                entry = {"role": agent, "observation": obs, "answer": gen.text, "valid": valid}
                game.transcript.append({**entry, "truncated": True} if truncated else entry)
            if policy.trainable:
                game.turns.append(
                    Turn(
                        game.match.env_id,
                        agent,
                        game.index,
                        prompt,
                        gen.token_ids,
                        gen.logprobs,
                        valid,
                        gen.finish_reason == "length",
                    )
                )

    def _finish(self, game: _Live) -> GameResult:
        self._idle.setdefault(game.match.env_id, []).append(game.env)
        return GameResult(game.index, game.match, game.returns, game.outcome, game.turns, game.transcript)

    def _take_env(self, env_id: str) -> AECEnv:
        idle = self._idle.get(env_id)
        if idle:
            return idle.pop()
        return spiral_envs.make(env_id, **self.env_kwargs.get(env_id, {}))
