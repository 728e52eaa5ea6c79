"""Playing a whole game with agents: the AEC loop every caller would otherwise write (the demo, the tiny
model's warm-up, tests), and the outcome as data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from spiral_envs.agents import Agent

OUTCOME_KEYS = ("legal_actions", "winner", "reason", "invalid_move", "offender")
"""Keys of a terminal info that are not the game's own score."""

TurnHook = Callable[[int, str, str, str], None]


@dataclass
class Outcome:
    """How one game ended, read from the terminal `info` and rewards every env hands its agents.

    `offender` is the agent whose answer held no legal move and so ended the game (None when the game ended
    by its rules); `score` is the game's own end-of-game figures (chips, trades, ...)."""

    winner: str | None
    reason: str
    invalid_move: bool
    rewards: dict[str, float]
    score: dict[str, Any] = field(default_factory=dict)
    offender: str | None = None
    figures: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per agent, the game's own numbers to average over games (`TextGame.figures`, e.g. Kuhn Poker's chips
    per round); empty for an env that is not a `TextGameEnv`."""

    @classmethod
    def from_env(cls, env: Any, info: dict[str, Any], rewards: dict[str, float]) -> Outcome:
        """The outcome `env`'s terminal `info` and final `rewards` (agent -> return) describe, with the game's
        figures when `env` is a `TextGameEnv`."""
        score = {k: v for k, v in info.items() if k not in OUTCOME_KEYS}
        game = getattr(env, "game", None)
        figures = {}
        if game is not None:
            figures = {agent: game.figures(score, i) for i, agent in enumerate(env.possible_agents)}
        return cls(
            winner=info.get("winner"),
            reason=str(info.get("reason", "the game ended")),
            invalid_move=bool(info.get("invalid_move", False)),
            rewards=dict(sorted(rewards.items())),
            score=score,
            offender=info.get("offender"),
            figures=figures,
        )


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
    return Outcome.from_env(env, terminal_info, rewards)
