"""Microseconds per move: a TextArena game through `spiral_envs.make("textarena/<id>")` against TextArena itself.

The wrapper (`spiral_envs.textarena_games`) swaps the global random streams around every call into the game,
copies a pristine env for every game, keeps each player's message log and renders the prompt through our
`TextGameEnv`. This measures what that costs, side by side in one run, on the same games with the same
random legal moves (read from TextArena's own state, as `benchmarks/envs.py` does), the prompt of the player
to move rendered every turn on every side:

- `TextArena`: `ta.make(id)` as TextArena returns it (its default observation wrappers), a fresh env per game
  (those wrappers keep their log across `reset`, so a reused env would replay old games into the prompt);
- `TextArena raw`: the unwrapped env, reset and reused, with the observation read from its state;
- `spiral_envs`: `make("textarena/<id>")`, reset and reused, as a trainer uses it.

Blocks alternate between the three (the order flips every repetition); the table shows medians of CPU time
(`time.process_time`). Needs TextArena: `pip install -e ".[textarena]"`.

    python benchmarks/textarena_wrapper.py [--repeats 5] [--min-time 0.5]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import spiral_envs

sys.path.insert(0, str(Path(__file__).parent))
from envs import MATCHUPS, Matchup  # the same games and random legal moves as benchmarks/envs.py


def play_wrapped(env: Any, matchup: Matchup, seed: int, rng: random.Random) -> int:
    env.reset(seed=seed)
    moves = 0
    for _agent in env.agent_iter():
        _observation, _reward, termination, truncation, _info = env.last()
        if termination or truncation:
            env.step(None)
            continue
        env.step(matchup.ta_moves(env.state.env, rng))  # the TextArena env this game drives
        moves += 1
    if env.outcome["invalid_move"]:
        raise RuntimeError(f"{matchup.ta_id}: a random legal move was rejected: {env.outcome}")
    return moves


def play_textarena(env: Any, matchup: Matchup, seed: int, rng: random.Random) -> int:
    env.reset(num_players=2, seed=seed)
    moves, done = 0, False
    while not done:
        env.get_observation()
        done, _ = env.step(matchup.ta_moves(env, rng))
        moves += 1
    return moves


def timed(play_one: Callable[[int], int], first_seed: int, min_time: float) -> tuple[int, float]:
    """(moves, CPU seconds) of whole games with consecutive seeds, for at least `min_time` seconds."""
    moves = games = 0
    start = time.process_time()
    while time.process_time() - start < min_time:
        moves += play_one(first_seed + games)
        games += 1
    return moves, time.process_time() - start


def measure(matchup: Matchup, repeats: int, min_time: float) -> dict[str, float]:
    """Median microseconds per move of each side."""
    import textarena as ta

    wrapped = spiral_envs.make("textarena/" + matchup.ta_id, **matchup.ta_kwargs)
    raw = ta.make(matchup.ta_id + "-raw", **matchup.ta_kwargs)
    rng = random.Random(0)
    runners: dict[str, Callable[[int], int]] = {
        "TextArena": lambda seed: play_textarena(ta.make(matchup.ta_id, **matchup.ta_kwargs), matchup, seed, rng),
        "TextArena raw": lambda seed: play_textarena(raw, matchup, seed, rng),
        "spiral_envs": lambda seed: play_wrapped(wrapped, matchup, seed, rng),
    }
    for run in runners.values():  # warm-up
        timed(run, 10**6, min_time / 10)
    per_move: dict[str, list[float]] = {name: [] for name in runners}
    order = list(runners)
    for repeat in range(repeats):
        for name in order if repeat % 2 == 0 else reversed(order):
            moves, seconds = timed(runners[name], repeat * 10**5, min_time)
            per_move[name].append(1e6 * seconds / moves)
    return {name: statistics.median(values) for name, values in per_move.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repetitions (median reported)")
    parser.add_argument("--min-time", type=float, default=0.5, help="CPU seconds per timed block")
    args = parser.parse_args()
    if not spiral_envs.textarena_games.installed():
        raise SystemExit(f"TextArena is not installed: {spiral_envs.textarena_games.INSTALL_HINT}")
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPU(s); "
        f"textarena {importlib.metadata.version('textarena')}; {args.repeats} interleaved repetitions of "
        f">= {args.min_time} CPU-s blocks; median microseconds per move\n"
    )
    header = (
        f"{'game':<30} {'TextArena':>10} {'TextArena raw':>14} {'spiral_envs':>12} {'vs TextArena':>13} {'vs raw':>8}"
    )
    print(header)
    print("-" * len(header))
    for matchup in MATCHUPS:
        us = measure(matchup, args.repeats, args.min_time)
        print(
            f"{matchup.name:<30} {us['TextArena']:>10.1f} {us['TextArena raw']:>14.1f} {us['spiral_envs']:>12.1f} "
            f"{us['spiral_envs'] / us['TextArena']:>12.2f}x {us['spiral_envs'] / us['TextArena raw']:>7.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
