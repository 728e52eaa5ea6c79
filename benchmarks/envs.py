"""Games per second: our environments against TextArena's, with random legal moves, measured side by side.

Self-play RL spends its time in the model, but the environment runs once per sampled answer, in the trainer's
own process; it must cost next to nothing. This script plays whole games with uniformly random legal moves and
renders the observation of the player to move at every turn (the prompt a model would read), for each of our
three games and for TextArena's version of it, and prints games per second for both.

Method: each game is played by each library in blocks of at least `--min-time` seconds; blocks alternate
between the libraries (and the order flips every repetition), `--repeats` times, and the table shows the
median rate. A fresh environment is made for every game on both sides (TextArena's observation wrappers keep
their message log across `reset`, so its envs cannot be reused); a last column shows ours when one env is
reset and reused, as a trainer does. Settings are matched: Kuhn Poker 5 rounds, Simple Negotiation 10 turns.
Time is this process's CPU time (`time.process_time`), not wall time: for single-threaded Python the two agree
on an idle machine, and CPU time stays honest when other jobs share the cores.

TextArena comes with the project's `textarena` extra (`pip install -e ".[textarena]"`, which the test
command installs). Without it the script measures ours alone and prints the command.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import spiral_envs

try:
    import textarena as ta
except ImportError:
    ta = None

INSTALL_TEXTARENA = 'pip install -e ".[textarena]" && python benchmarks/envs.py'


@dataclass(frozen=True)
class Matchup:
    """One game in both libraries, with settings that make the two play the same length of game."""

    name: str
    ours_id: str
    ours_kwargs: dict[str, Any]
    ta_id: str
    ta_kwargs: dict[str, Any]
    ta_moves: Callable[[Any, random.Random], str]
    """A random legal answer for TextArena's player to move, built from its game state."""


# -- TextArena random legal moves (read from its state, in its own bracket grammar) ---------------------------


def ta_tictactoe_move(env: Any, rng: random.Random) -> str:
    board = env.state.game_state["board"]
    free = [r * 3 + c for r in range(3) for c in range(3) if board[r][c] == ""]
    return f"[{rng.choice(free)}]"


def ta_kuhn_move(env: Any, rng: random.Random) -> str:
    return f"[{rng.choice(list(env.state.game_state['current_legal_action_tree']))}]"


NEGOTIATION_RESOURCES = ("Wheat", "Wood", "Sheep", "Brick", "Ore")


def ta_negotiation_move(env: Any, rng: random.Random) -> str:
    """Accept an acceptable standing offer, deny, or offer 1-3 of something held for 1-3 of something else."""
    state = env.state
    me = state.current_player_id
    held = state.game_state["player_resources"][me]
    offer = state.game_state["current_offer"]
    choices = ["deny", "offer"]
    if offer is not None and all(held.get(r, 0) >= q for r, q in offer["requested_resources"].items()):
        choices.append("accept")
    choice = rng.choice(choices)
    if choice == "accept":
        return "[Accept]"
    if choice == "deny":
        return "[Deny]"
    give = rng.choice([r for r in NEGOTIATION_RESOURCES if held[r] > 0])
    want = rng.choice([r for r in NEGOTIATION_RESOURCES if r != give])
    return f"[Offer: {rng.randint(1, min(3, held[give]))} {give} -> {rng.randint(1, 3)} {want}]"


MATCHUPS = (
    Matchup("TicTacToe", "TicTacToe-v0", {}, "TicTacToe-v0", {}, ta_tictactoe_move),
    Matchup("KuhnPoker (5 rounds)", "KuhnPoker-v1", {"num_rounds": 5}, "KuhnPoker-v0", {"max_rounds": 5}, ta_kuhn_move),
    Matchup(
        "SimpleNegotiation (10 turns)",
        "SimpleNegotiation-v1",
        {"max_turns": 10},
        "SimpleNegotiation-v0",
        {"max_turns": 10},
        ta_negotiation_move,
    ),
)


# -- one game ---------------------------------------------------------------------------------------------------


def play_ours(env: Any, seed: int, agent: spiral_envs.RandomAgent) -> int:
    """One game through the standard AEC loop; `env.last()` renders the observation of the agent to move."""
    env.reset(seed=seed)
    moves = 0
    for _agent in env.agent_iter():
        observation, _reward, termination, truncation, info = env.last()
        if termination or truncation:
            env.step(None)
        else:
            env.step(agent(str(observation), info))
            moves += 1
    return moves


def play_textarena(matchup: Matchup, seed: int, rng: random.Random) -> int:
    """One game through TextArena's loop: get_observation (the prompt of the player to move), step, close."""
    env = ta.make(matchup.ta_id, **matchup.ta_kwargs)
    env.reset(num_players=2, seed=seed)
    moves, done = 0, False
    while not done:
        _player, _observation = env.get_observation()
        done, _info = env.step(matchup.ta_moves(env, rng))
        moves += 1
    _rewards, game_info = env.close()
    if any(info.get("invalid_move") for info in game_info.values()):
        raise RuntimeError(f"TextArena {matchup.ta_id}: a 'legal' random move was rejected: {game_info}")
    return moves


# -- timing -----------------------------------------------------------------------------------------------------


@dataclass
class Block:
    games: int
    moves: int
    seconds: float


def timed(play_one: Callable[[int], int], first_seed: int, min_time: float) -> Block:
    """Play games with consecutive seeds until `min_time` seconds of CPU time have passed."""
    games = moves = 0
    start = time.process_time()
    while True:
        moves += play_one(first_seed + games)
        games += 1
        elapsed = time.process_time() - start
        if elapsed >= min_time:
            return Block(games, moves, elapsed)


def measure(matchup: Matchup, repeats: int, min_time: float) -> dict[str, list[Block]]:
    """Interleaved blocks per library; the order flips each repetition so drift hits both sides alike."""
    ours_rng = random.Random(0)
    ours_agent = spiral_envs.RandomAgent(1)
    reused = spiral_envs.make(matchup.ours_id, **matchup.ours_kwargs)
    ta_rng = random.Random(2)
    runners: dict[str, Callable[[int], int]] = {
        "ours": lambda seed: play_ours(spiral_envs.make(matchup.ours_id, **matchup.ours_kwargs), seed, ours_agent),
        "ours reused env": lambda seed: play_ours(reused, seed, ours_agent),
    }
    if ta is not None:
        runners["textarena"] = lambda seed: play_textarena(matchup, seed, ta_rng)
    for run in runners.values():  # warm-up: imports, caches
        timed(run, 10**6 + ours_rng.randrange(10**6), min_time / 10)
    blocks: dict[str, list[Block]] = {name: [] for name in runners}
    order = list(runners)
    for repeat in range(repeats):
        for name in order if repeat % 2 == 0 else reversed(order):
            blocks[name].append(timed(runners[name], repeat * 10**5, min_time))
    return blocks


def rate(blocks: list[Block]) -> float:
    return statistics.median(b.games / b.seconds for b in blocks)


def moves_per_game(blocks: list[Block]) -> float:
    return sum(b.moves for b in blocks) / sum(b.games for b in blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repetitions (median reported)")
    parser.add_argument("--min-time", type=float, default=0.5, help="seconds per timed block")
    parser.add_argument("--games", nargs="*", help="only these games (substring of the name)")
    args = parser.parse_args()

    textarena_version = importlib.metadata.version("textarena") if ta is not None else "not installed"
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPU(s); "
        f"spiral_envs {importlib.metadata.version('spiral-envs')}; textarena {textarena_version}"
    )
    print(f"{args.repeats} interleaved repetitions of >= {args.min_time} CPU-s blocks; median games per CPU second\n")
    header = (
        f"{'game':<30} {'ours games/s':>13} {'TextArena games/s':>18} {'ratio':>7} "
        f"{'ours reused env':>16} {'moves/game ours':>16} {'moves/game TA':>14}"
    )
    print(header)
    print("-" * len(header))
    for matchup in MATCHUPS:
        if args.games and not any(g.lower() in matchup.name.lower() for g in args.games):
            continue
        blocks = measure(matchup, args.repeats, args.min_time)
        ours = rate(blocks["ours"])
        theirs = f"{rate(blocks['textarena']):,.0f}" if "textarena" in blocks else "-"
        ratio = f"{ours / rate(blocks['textarena']):.1f}x" if "textarena" in blocks else "-"
        their_moves = f"{moves_per_game(blocks['textarena']):.1f}" if "textarena" in blocks else "-"
        print(
            f"{matchup.name:<30} {ours:>13,.0f} {theirs:>18} {ratio:>7} {rate(blocks['ours reused env']):>16,.0f} "
            f"{moves_per_game(blocks['ours']):>16.1f} {their_moves:>14}",
            flush=True,
        )
    if ta is None:
        print(f"\ntextarena is not installed here, so only our games were measured. To compare:\n  {INSTALL_TEXTARENA}")
    else:
        print(
            "\nTextArena ids: "
            + "; ".join(f"{m.name} = {m.ta_id} {m.ta_kwargs or ''}".rstrip() for m in MATCHUPS)
            + " (default wrappers, as ta.make returns them)"
        )


if __name__ == "__main__":
    main()
