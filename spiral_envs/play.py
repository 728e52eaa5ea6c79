"""Playing a whole game with agents: the AEC loop every caller would otherwise write (the demo, the tiny
model's warm-up, tests), and the outcome as data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from spiral_envs.agents import Agent

OUTCOME_KEYS = ("legal_actions", "winner", "reason", "invalid_move")
"""Keys of a terminal info that are not the game's own score."""

TurnHook = Callable[[int, str, str, str], None]


@dataclass
class Outcome:
    """How one game ended, read from the terminal `info` and rewards every env hands its agents."""

    winner: str | None
    reason: str
    invalid_move: bool
    rewards: dict[str, float]
    score: dict[str, Any] = field(default_factory=dict)


def play_game(env: Any, agents: dict[str, Agent], seed: int, on_turn: TurnHook | None = None) -> Outcome:
    """One game of `env` from `reset(seed=seed)` to its end, through the plain AEC loop: `agents[role](observation,
    info)` answers each turn, and `on_turn(turn, agent, prompt, answer)`, if given, sees each move."""
    env.reset(seed=seed)
    terminal_info: dict[str, Any] = {}
    rewards: dict[str, float] = {}
    turn = 0
    for agent in env.agent_iter():
        observation, reward, termination, truncation, info = env.last()
        if termination or truncation:
            terminal_info = terminal_info or dict(info)
            rewards[agent] = float(reward)
            env.step(None)
            continue
        turn += 1
        prompt = str(observation)
        answer = agents[agent](prompt, info)
        if on_turn is not None:
            on_turn(turn, agent, prompt, answer)
        env.step(answer)
    return Outcome(
        winner=terminal_info.get("winner"),
        reason=str(terminal_info.get("reason", "the game ended")),
        invalid_move=bool(terminal_info.get("invalid_move", False)),
        rewards=dict(sorted(rewards.items())),
        score={k: v for k, v in terminal_info.items() if k not in OUTCOME_KEYS},
    )
