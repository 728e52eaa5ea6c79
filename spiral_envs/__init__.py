"""spiral_envs: two-player zero-sum text games as PettingZoo AEC environments, for self-play RL on LLMs.

import spiral_envs
env = spiral_envs.make("KuhnPoker-v1")
env.reset(seed=0)
prompt = spiral_envs.qwen3_prompt(str(env.observe(env.agent_selection)))
"""

from importlib.metadata import PackageNotFoundError, version

from spiral_envs.agents import Agent, RandomAgent, boxed, make_agent
from spiral_envs.core import TERMINAL, GameState, InvalidMove, TextGame, normalize_move, zero_sum_returns
from spiral_envs.env import HISTORY_MODES, TextGameEnv
from spiral_envs.parsing import extract_move, last_boxed, read_move
from spiral_envs.play import Outcome, play_game
from spiral_envs.prompts import TEMPLATE_NAMES, TEMPLATES, chat_messages, chat_prompt, qwen3_prompt, render_prompt
from spiral_envs.registry import (
    ENTRY_POINT_GROUP,
    EnvSpec,
    UnknownEnvError,
    _register_shipped,
    make,
    register,
    registered_ids,
    spec,
)

try:
    __version__ = version("spiral-envs")
    """The distribution's version: pyproject.toml is its one source."""
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

_register_shipped(
    "TicTacToe-v0",
    "spiral_envs.games.tictactoe:TicTacToe",
    expert="spiral_envs.games.tictactoe:TicTacToeMinimaxAgent",
    theory="spiral_envs.games.tictactoe_strategy:TicTacToeTheory",
)
_register_shipped(
    "KuhnPoker-v1",
    "spiral_envs.games.kuhn_poker:KuhnPoker",
    expert="spiral_envs.games.kuhn_theory:KuhnPokerMatchNashAgent",
    theory="spiral_envs.games.kuhn_strategy:KuhnPokerTheory",
    num_rounds=5,
)
_register_shipped(
    "SimpleNegotiation-v1",
    "spiral_envs.games.negotiation:SimpleNegotiation",
    expert="spiral_envs.games.negotiation:NegotiationHeuristicAgent",
    max_turns=10,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "HISTORY_MODES",
    "TEMPLATES",
    "TEMPLATE_NAMES",
    "TERMINAL",
    "Agent",
    "EnvSpec",
    "GameState",
    "InvalidMove",
    "Outcome",
    "RandomAgent",
    "TextGame",
    "TextGameEnv",
    "UnknownEnvError",
    "boxed",
    "chat_messages",
    "chat_prompt",
    "extract_move",
    "last_boxed",
    "make",
    "make_agent",
    "normalize_move",
    "play_game",
    "qwen3_prompt",
    "read_move",
    "register",
    "registered_ids",
    "render_prompt",
    "spec",
    "zero_sum_returns",
]
