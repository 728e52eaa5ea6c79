"""Seconds to read a hostile answer of 0.5 MB and of 4 MB: TextArena's games through `spiral_envs`, and ours.

The answers are the shapes on which TextArena 0.7.4's own move regexes backtrack (issue 28): a bid padded
with spaces (LiarsDice, ColonelBlotto), a digit then spaces (UltimateTicTacToe), a run of digits (Othello) and
a run of letters (ConnectFour), each boxed. For each game the time of one `env.step(answer)` (the fastest of
three, CPU time) is summed over the shapes, at both sizes; linear reading gives a ratio near 8. With
`--raw`, the same shapes handed whole to TextArena's env at 10k and 20k characters show its own growth
(quadratic: near 4). Needs TextArena: `pip install -e ".[textarena]"`.

    python benchmarks/hostile_answers.py [--raw]
"""

from __future__ import annotations

import argparse
import time

import spiral_envs

SHAPES = {
    "bid-spaces": lambda n: "[bid" + " " * n + "x]",
    "digit-spaces": lambda n: "[1" + " " * n + "x]",
    "digits": lambda n: "[" + "1" * n + "x]",
    "letters": lambda n: "a" * n,
}
TEXTARENA = ["LiarsDice-v0", "Othello-v0", "UltimateTicTacToe-v0", "ColonelBlotto-v0", "ConnectFour-v0"]
OURS = ["TicTacToe-v0", "KuhnPoker-v1", "SimpleNegotiation-v1"]
SIZES = (500_000, 4_000_000)


def fastest(step, reset, answer: str) -> float:
    best = float("inf")
    for _ in range(3):
        reset()
        start = time.process_time()
        step(answer)
        best = min(best, time.process_time() - start)
    return best


def read_time(env_id: str, n: int) -> float:
    env = spiral_envs.make(env_id)
    return sum(fastest(env.step, lambda: env.reset(seed=0), "\\boxed{" + shape(n) + "}") for shape in SHAPES.values())


def raw_time(ta_id: str, n: int) -> float:
    """TextArena's own env stepped with the whole move, as the wrapper did before issue 28."""
    env = spiral_envs.make("textarena/" + ta_id)

    def reset() -> None:
        env.reset(seed=0)

    return sum(fastest(lambda a: env.state.env.step(a), reset, shape(n)) for shape in SHAPES.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", action="store_true", help="also time TextArena's own env on the whole move")
    args = parser.parse_args()
    print(f"| game | {SIZES[0] / 1e6:g} MB (s) | {SIZES[1] / 1e6:g} MB (s) | ratio |")
    print("|---|---|---|---|")
    for env_id in ["textarena/" + g for g in TEXTARENA] + OURS:
        small, large = read_time(env_id, SIZES[0]), read_time(env_id, SIZES[1])
        print(f"| {env_id} | {small:.4f} | {large:.4f} | {large / small:.1f} |")
    if args.raw:
        print("\n| TextArena's own env | 10k chars (s) | 20k chars (s) | ratio |")
        print("|---|---|---|---|")
        for ta_id in TEXTARENA:
            small, large = raw_time(ta_id, 10_000), raw_time(ta_id, 20_000)
            print(f"| {ta_id} | {small:.3f} | {large:.3f} | {large / small:.1f} |")


if __name__ == "__main__":
    main()
