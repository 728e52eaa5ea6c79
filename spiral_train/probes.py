"""Fixed decision points of a game, and the model's answers at them: the raw data of the strategy metrics.

A probe is a position built by playing the real env from a seed (never by writing a prompt by hand), with
what the game's theory says about it: for Kuhn Poker the information state (card, betting of the round), for
TicTacToe the board and the moves that keep its minimax value. Sampling the model many times at each probe
estimates its behaviour policy there, which `spiral_train.strategy` turns into exploitability and
optimal-move rates.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import spiral_envs
from spiral_envs.games import kuhn_theory
from spiral_envs.games.tictactoe import optimal_moves
from spiral_train.collector import ModelPolicy


@dataclass(frozen=True)
class Probe:
    """One decision point: the prompt the mover sees, its legal moves, and the game's facts about it."""

    observation: str
    legal: tuple[str, ...]
    """Legal moves as the env writes them, e.g. ("[check]", "[bet]")."""
    key: tuple[Any, ...]
    """Kuhn Poker: (card, betting); TicTacToe: (board, player)."""
    optimal: frozenset[str] = frozenset()
    """The legal moves that keep the game's minimax value (TicTacToe); empty where not defined."""


def _play_to(env: Any, moves: Sequence[str]) -> None:
    for move in moves:
        env.step(spiral_envs.boxed(f"[{move}]"))


@functools.cache
def kuhn_probes(env_id: str, env_kwargs_json: str = "{}") -> tuple[Probe, ...]:
    """The 12 information states of the first hand (`kuhn_theory.INFO_STATES`, in its order), each reached by
    playing the real env from a seed found by search (the card of the player to act, then the betting line)."""
    kwargs = json.loads(env_kwargs_json)
    env = spiral_envs.make(env_id, **kwargs)
    probes = []
    for card, line in kuhn_theory.INFO_STATES:
        for seed in range(10_000):
            env.reset(seed=seed)
            _play_to(env, line)
            info = env.infos[env.agent_selection]
            if info["view"]["card"] == card:
                break
        else:  # pragma: no cover - a deal of three cards finds every card within a few seeds
            raise RuntimeError(f"no seed deals {card} to the player to act after {line} in {env_id}")
        obs = str(env.observe(env.agent_selection))
        probes.append(Probe(obs, tuple(info["legal_actions"]), (card, line)))
    return tuple(probes)


@functools.cache
def tictactoe_probes(env_id: str, env_kwargs_json: str = "{}", count: int = 120, seed: int = 0) -> tuple[Probe, ...]:
    """`count` distinct non-terminal positions reached by uniformly random play from seeded games, each with
    its minimax-optimal moves (those that keep the value of the position for the player to move)."""
    kwargs = json.loads(env_kwargs_json)
    env = spiral_envs.make(env_id, **kwargs)
    rng = random.Random(seed)
    seen: set[tuple[Any, ...]] = set()
    probes = []
    while len(probes) < count:
        env.reset(seed=rng.randrange(2**31))
        depth = rng.randrange(0, 8)
        for _ in range(depth):
            legal = env.infos[env.agent_selection]["legal_actions"]
            env.step(spiral_envs.boxed(rng.choice(legal)))
            if not env.agents or env.terminations[env.agent_selection]:
                break
        if not env.agents or env.terminations[env.agent_selection]:
            continue
        info = env.infos[env.agent_selection]
        view = info["view"]
        key = (tuple(view["board"]), view["player"])
        if key in seen:
            continue
        seen.add(key)
        best = frozenset(f"[{cell}]" for cell in optimal_moves(view["board"], view["player"]))
        probes.append(Probe(str(env.observe(env.agent_selection)), tuple(info["legal_actions"]), key, best))
    return tuple(probes)


PROBE_CHUNK = 256
"""Answers sampled per generation call at the probes (a call is where progress is reported)."""


def sample_moves(
    policy: ModelPolicy, probes: Sequence[Probe], samples: int, on_answers: Callable[[int], None] | None = None
) -> list[list[str | None]]:
    """`samples` answers of `policy` at each probe, in batched generation calls of `PROBE_CHUNK` answers (each
    followed by `on_answers(count)`), each read as a legal move text (as the probe lists it) or None: no legal
    move, or (with `policy.truncated_is_invalid`, as in play) an answer cut off at the token limit."""
    prompts = policy.prompt_ids([p.observation for p in probes for _ in range(samples)])
    generations = []
    for start in range(0, len(prompts), PROBE_CHUNK):
        piece = prompts[start : start + PROBE_CHUNK]
        generations.extend(policy.sample(piece))
        if on_answers is not None:
            on_answers(len(piece))
    moves: list[list[str | None]] = []
    for i, probe in enumerate(probes):
        legal = {spiral_envs.normalize_move(text): text for text in probe.legal}
        row = []
        for gen in generations[i * samples : (i + 1) * samples]:
            move = spiral_envs.extract_move(gen.text)
            if move is None or (gen.finish_reason == "length" and policy.truncated_is_invalid):
                row.append(None)
            else:
                row.append(legal.get(spiral_envs.normalize_move(move)))
        moves.append(row)
    return moves
