"""spiral_envs: two-player zero-sum text games as PettingZoo AEC environments, for self-play RL on LLMs.

import spiral_envs
env = spiral_envs.make("KuhnPoker-v1")
env.reset(seed=0)
prompt = spiral_envs.qwen3_prompt(str(env.observe(env.agent_selection)))
"""

from spiral_envs.agents import Agent, RandomAgent, boxed, make_agent
from spiral_envs.core import TERMINAL, GameState, InvalidMove, TextGame, normalize_move, zero_sum_returns
from spiral_envs.env import HISTORY_MODES, TextGameEnv
from spiral_envs.parsing import extract_move
from spiral_envs.prompts import TEMPLATES, chat_messages, chat_prompt, qwen3_prompt
from spiral_envs.registry import (
    ENTRY_POINT_GROUP,
    EnvSpec,
    UnknownEnvError,
    make,
    register,
    registered_ids,
    spec,
)

register("TicTacToe-v0", "spiral_envs.games.tictactoe:TicTacToeEnv")
register("KuhnPoker-v1", "spiral_envs.games.kuhn_poker:KuhnPokerEnv", num_rounds=5)
register("SimpleNegotiation-v1", "spiral_envs.games.negotiation:SimpleNegotiationEnv", max_turns=10)

__all__ = [
    "ENTRY_POINT_GROUP",
    "HISTORY_MODES",
    "TEMPLATES",
    "TERMINAL",
    "Agent",
    "EnvSpec",
    "GameState",
    "InvalidMove",
    "RandomAgent",
    "TextGame",
    "TextGameEnv",
    "UnknownEnvError",
    "boxed",
    "chat_messages",
    "chat_prompt",
    "extract_move",
    "make",
    "make_agent",
    "normalize_move",
    "qwen3_prompt",
    "register",
    "registered_ids",
    "spec",
    "zero_sum_returns",
]
