"""Reference agents: fixed opponents for evaluation and baselines for tests.

An agent is any callable `agent(observation, info) -> answer`: it reads the prompt and the env's `info` for
the player to move (`info["legal_actions"]`, and `info["view"]`, the structured form of what that player may
see) and answers with text, as a model would. Scripted agents play from `info["view"]` so they never depend
on the wording of a prompt.
"""

from __future__ import annotations

import random
from typing import Any, Protocol

from spiral_envs.registry import spec

AGENT_KINDS = ("random", "strong")


class Agent(Protocol):
    def __call__(self, observation: str, info: dict[str, Any]) -> str: ...


def boxed(move: str) -> str:
    """The answer that commits to `move`, in the paper's format."""
    return f"\\boxed{{{move}}}"


NO_MOVE_ANSWER = "I have nothing to add."
"""What `RandomAgent` says on a turn whose env lists no move (a TextArena game's free talk)."""


class RandomAgent:
    """A uniformly random legal move, from its own seeded stream; talk where the env lists no move."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)

    def __call__(self, observation: str, info: dict[str, Any]) -> str:
        legal = info.get("legal_actions")
        if legal is None:
            raise ValueError("RandomAgent needs info['legal_actions'] of the player to move; the info has none")
        return boxed(self.rng.choice(legal)) if legal else NO_MOVE_ANSWER


def make_agent(kind: str, env_id: str, seed: int | None = None) -> Agent:
    """`"random"` or `"strong"` (the game's scripted expert, e.g. minimax for TicTacToe) for `env_id`."""
    if kind == "random":
        return RandomAgent(seed)
    if kind != "strong":
        raise ValueError(f"agent kind {kind!r} is unknown; use one of {list(AGENT_KINDS)}")
    strong = spec(env_id).load_expert()
    if strong is None:
        raise ValueError(
            f"{env_id} ships no strong agent (registered with no `expert=`, and its game or env class sets no "
            "`strong_agent`); use 'random'"
        )
    return strong(seed=seed)
