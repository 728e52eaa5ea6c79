"""Play many games at once, answering all pending model turns of all live games in one batched call.

One tick: every live game is advanced through its scripted seats (reference agents answer instantly) until
a model seat must answer; then each model policy answers all of its pending prompts, both roles and all
games together, in one `generate` call. Sampling dominates the cost of a step, and a batch of 64 costs
little more than a batch of 1, so this is where the collector's speed comes from.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pettingzoo import AECEnv

import spiral_envs
from spiral_envs.play import Outcome
from spiral_train.rollout.policy import ModelPolicy
from spiral_train.rollout.records import LEARNER, GameResult, Match, Turn

TIMED = ("generation", "tokenize", "env")
"""The parts of playing games that `Collector.seconds` times."""
__all__ = ["AgentFactory", "Collector", "GameResult", "Match", "ModelPolicy", "Players", "Turn", "scripted"]


AgentFactory = Callable[[str, int, str], spiral_envs.Agent]
"""(env id, game seed, role) -> a scripted agent for that seat of that game."""

Players = Mapping[str, ModelPolicy | AgentFactory]
"""Seat kind -> who plays it here: a model (all of its seats' turns answered in one batched call per tick), or a
factory of scripted agents, one per game."""


def _reference_agent(env_id: str, seed: int, role: str, kind: str) -> spiral_envs.Agent:
    return spiral_envs.make_agent(kind, env_id, seed=seed)


def scripted(kind: str) -> AgentFactory:
    """The game's reference agent of `kind` ("random" or "strong"), seeded by the game's seed."""
    return functools.partial(_reference_agent, kind=kind)


@dataclass
class _Live:
    """A game in flight: its result so far, its env, and its scripted agents (None: a model seat)."""

    result: GameResult
    env: AECEnv
    seats: dict[str, spiral_envs.Agent | None]
    final_info: dict[str, Any] = field(default_factory=dict)


def _entry(env: AECEnv, agent: str, observation: str, answer: str) -> dict[str, Any]:
    """The transcript entry of the move just played: the env's own (`TextGameEnv.transcript`: agent, answer,
    move, error) with the prompt added; `answer` is what the seat wrote (a truncated answer is played as "").
    A model seat's entry also counts its answer's `tokens` (and says `truncated` where it was cut off)."""
    log = getattr(env, "transcript", None)
    own = log[-1] if log else {"agent": agent}
    return {**own, "answer": answer, "observation": observation}


def _seat(player: ModelPolicy | AgentFactory, match: Match, role: str) -> spiral_envs.Agent | None:
    return None if isinstance(player, ModelPolicy) else player(match.env_id, match.seed, role)


class Collector:
    """Plays lists of `Match`es with up to `num_envs` games in flight; only "learner" seats make `Turn`s."""

    def __init__(self, num_envs: int, env_kwargs: dict[str, dict[str, Any]] | None = None) -> None:
        self.num_envs = num_envs
        self.env_kwargs = env_kwargs or {}
        self._idle: dict[str, list[AECEnv]] = {}
        self.seconds = dict.fromkeys(TIMED, 0.0)
        """Time spent since `take_seconds()`, by part: sampling, tokenising prompts, and the envs (with their
        scripted seats)."""

    def take_seconds(self) -> dict[str, float]:
        """The time by part since the last call, and start counting again."""
        seconds, self.seconds = self.seconds, dict.fromkeys(TIMED, 0.0)
        return seconds

    def play(
        self,
        matches: Sequence[Match],
        players: Players,
        keep_transcripts: bool = True,
        on_finished: Callable[[GameResult], None] | None = None,
    ) -> list[GameResult]:
        """Play every match, its seats by `players[kind]`; the results in the order of `matches`.
        `on_finished` is called with each game as it ends (progress)."""
        missing = sorted({kind for m in matches for kind in m.seats.values()} - set(players))
        if missing:
            raise ValueError(f"no player for seat kinds {missing}; this collector was given {sorted(players)}")
        pending = deque(enumerate(matches))
        live: list[_Live] = []
        results: list[GameResult | None] = [None] * len(matches)
        while pending or live:
            while pending and len(live) < self.num_envs:
                index, match = pending.popleft()
                env = self._take_env(match.env_id)
                env.reset(seed=match.seed)
                result = GameResult(match, index, dict.fromkeys(env.possible_agents, 0.0))
                seats = {role: _seat(players[kind], match, role) for role, kind in match.seats.items()}
                live.append(_Live(result, env, seats))
            requests: dict[str, list[tuple[_Live, str, str]]] = {}
            waiting = []
            for game in live:
                start = time.perf_counter()
                request = self._advance(game, keep_transcripts)
                self.seconds["env"] += time.perf_counter() - start
                if request is None:
                    self._idle.setdefault(game.result.match.env_id, []).append(game.env)
                    results[game.result.index] = game.result
                    if on_finished is not None:
                        on_finished(game.result)
                    continue
                agent, obs = request
                requests.setdefault(game.result.match.seats[agent], []).append((game, agent, obs))
                waiting.append(game)
            for kind, batch in requests.items():
                self._answer(players[kind], batch, keep_transcripts)  # type: ignore[arg-type]
            live = waiting
        return [r for r in results if r is not None]

    def _advance(self, game: _Live, keep: bool) -> tuple[str, str] | None:
        """Step scripted seats until a model seat must answer (its role and prompt) or the game is over (None)."""
        env = game.env
        result = game.result
        while env.agents:
            agent = env.agent_selection
            obs, reward, term, trunc, info = env.last()
            result.returns[agent] += float(reward)
            if term or trunc:
                game.final_info = game.final_info or info
                env.step(None)
                continue
            seat = game.seats[agent]
            if seat is None:
                return agent, str(obs)
            answer = seat(str(obs), info)
            env.step(answer)
            if keep:
                result.transcript.append(_entry(env, agent, str(obs), answer))
        result.outcome = Outcome.from_env(env, game.final_info, result.returns)
        return None

    def _answer(self, policy: ModelPolicy, batch: list[tuple[_Live, str, str]], keep: bool) -> None:
        start = time.perf_counter()
        prompts = policy.prompt_ids([obs for _, _, obs in batch])
        sampled = time.perf_counter()
        generations = policy.sample(prompts)
        stepped = time.perf_counter()
        self.seconds["tokenize"] += sampled - start
        self.seconds["generation"] += stepped - sampled
        for (game, agent, obs), prompt, gen in zip(batch, prompts, generations):
            truncated = gen.finish_reason == "length"
            game.env.step("" if truncated and policy.truncated_is_invalid else gen.text)
            info = game.env.infos.get(agent, {})
            valid = not info.get("invalid_move", False)
            result = game.result
            if keep:
                entry = {**_entry(game.env, agent, obs, gen.text), "tokens": len(gen.token_ids)}
                result.transcript.append({**entry, "truncated": True} if truncated else entry)
            if result.match.seats[agent] == LEARNER:
                sample = (prompt, gen.token_ids, gen.logprobs, valid, truncated)
                result.turns.append(Turn(result.match.env_id, agent, result.index, *sample))
        self.seconds["env"] += time.perf_counter() - stepped

    def _take_env(self, env_id: str) -> AECEnv:
        idle = self._idle.get(env_id)
        if idle:
            return idle.pop()
        return spiral_envs.make(env_id, **self.env_kwargs.get(env_id, {}))
