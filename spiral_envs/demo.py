"""`spiral-demo`: watch each game played once, then see how far the scripted experts are above chance.

A first look at the package should show the exact text a model reads and writes, without a GPU or a model:
the strong scripted agent plays a seeded random agent, turn by turn. The closing table is also a quick sanity
check of the experts themselves (they should beat random play in both seats and never make an invalid move).

    spiral-demo                         # every registered game, 100 games each for the table
    python -m spiral_envs.demo --env KuhnPoker-v1 --games 20 --full-prompts
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from spiral_envs.agents import Agent, RandomAgent, make_agent
from spiral_envs.play import Outcome, play_game
from spiral_envs.registry import make, registered_ids, spec
from spiral_envs.textarena_games import PREFIX

RULE = "=" * 100


@dataclass
class Tally:
    """Results of the strong agent in one seat: counted, so the table can show rates and totals."""

    games: int = 0
    win: int = 0
    draw: int = 0
    loss: int = 0
    invalid: int = 0

    def add(self, other: Tally) -> Tally:
        return Tally(*(a + b for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def astuple(self) -> tuple[int, int, int, int, int]:
        return (self.games, self.win, self.draw, self.loss, self.invalid)


def seat_agents(env: Any, strong: Agent, weak: Agent, strong_seat: int) -> tuple[dict[str, Agent], dict[str, str]]:
    """Agents and their display names by PettingZoo agent name, with the strong agent in `strong_seat`."""
    names = list(env.possible_agents)
    agents = {name: strong if i == strong_seat else weak for i, name in enumerate(names)}
    labels = {name: "strong" if i == strong_seat else "random" for i, name in enumerate(names)}
    return agents, labels


class PromptPrinter:
    """Prints each turn; after a role's first prompt, only what follows its rules (they never change)."""

    def __init__(self, env: Any, labels: dict[str, str], full_prompts: bool) -> None:
        self.env = env
        self.labels = labels
        self.full_prompts = full_prompts
        self.shown_rules: set[str] = set()

    def rules_of(self, agent: str) -> str | None:
        game = getattr(self.env, "game", None)
        if game is None or agent not in self.env.possible_agents:
            return None  # not a TextGameEnv (a plugin's own AECEnv): always show the whole prompt
        return game.rules(self.env.possible_agents.index(agent))

    def __call__(self, turn: int, agent: str, prompt: str, answer: str) -> None:
        print(f"--- Turn {turn}: {agent} ({self.labels[agent]}) to move; its prompt:")
        rules = self.rules_of(agent)
        if not self.full_prompts and rules and agent in self.shown_rules and prompt.startswith(rules):
            print(f"[rules for {agent} as above]")
            print(prompt[len(rules) :].lstrip("\n"))
        else:
            print(prompt)
            self.shown_rules.add(agent)
        print(f">>> {agent} ({self.labels[agent]}) answers: {answer}")


def format_result(result: Outcome, labels: dict[str, str]) -> str:
    winner = "draw" if result.winner is None else f"{result.winner} ({labels.get(result.winner, '?')}) wins"
    rewards = ", ".join(f"{a} {r:+g}" for a, r in result.rewards.items())
    score = ", ".join(f"{k}={v}" for k, v in result.score.items()) or "-"
    return f"Result: {winner}; reason: {result.reason}; score: {score}; rewards: {rewards}"


def showcase(env_id: str, seed: int, full_prompts: bool) -> None:
    """One fully printed game: the strong agent as player_0, the random agent as player_1."""
    env = make(env_id)
    agents, labels = seat_agents(env, make_agent("strong", env_id, seed=seed), RandomAgent(seed + 1), strong_seat=0)
    print(RULE)
    print(f"{env_id}: {' vs '.join(f'{a} ({labels[a]})' for a in env.possible_agents)}, seed {seed}")
    print(RULE)
    result = play_game(env, agents, seed, PromptPrinter(env, labels, full_prompts))
    print(format_result(result, labels))
    print()


def evaluate(env_id: str, games: int, seed: int) -> tuple[Tally, Tally]:
    """The strong agent against random over `games` seeded games, seats alternating; a tally per seat."""
    env = make(env_id)
    strong, weak = make_agent("strong", env_id, seed=seed), RandomAgent(seed + 1)
    tallies = (Tally(), Tally())
    for i in range(games):
        seat = i % 2
        agents, _ = seat_agents(env, strong, weak, seat)
        result = play_game(env, agents, seed + i)
        strong_name = env.possible_agents[seat]
        tally = tallies[seat]
        tally.games += 1
        tally.invalid += result.invalid_move
        if result.winner is None:
            tally.draw += 1
        elif result.winner == strong_name:
            tally.win += 1
        else:
            tally.loss += 1
    return tallies


def summary_table(rows: list[tuple[str, str, Tally]]) -> str:
    width = max([len("game"), *(len(env_id) for env_id, _, _ in rows)])
    lines = [f"{'game':<{width}}  {'strong as':<9}  {'games':>5}  {'win':>6}  {'draw':>6}  {'loss':>6}  invalid"]
    for env_id, seat, t in rows:
        rates = (f"{100 * n / t.games:5.1f}%" if t.games else "     -" for n in (t.win, t.draw, t.loss))
        lines.append(f"{env_id:<{width}}  {seat:<9}  {t.games:>5}  {'  '.join(rates)}  {t.invalid:>7}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="spiral-demo",
        description="Play each registered game (not TextArena's, which have no expert) once, strong scripted "
        "agent vs random, printing prompts and answers; then tabulate the strong agent's results over many games.",
    )
    parser.add_argument("--env", action="append", metavar="ID", help="only this game id (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the games and the agents (default 0)")
    parser.add_argument(
        "--games", type=int, default=100, help="games per game id for the summary table, seats alternating (100)"
    )
    parser.add_argument(
        "--full-prompts", action="store_true", help="print every prompt in full (default: rules only the first time)"
    )
    args = parser.parse_args(argv)
    if args.games < 0:
        parser.error(f"--games must be >= 0, got {args.games}")
    for env_id in args.env or []:
        try:
            spec(env_id)
        except KeyError as err:
            parser.error(str(err.args[0]))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    env_ids = args.env or [i for i in registered_ids() if not i.startswith(PREFIX)]  # TextArena's: no expert
    rows: list[tuple[str, str, Tally]] = []
    for env_id in env_ids:
        try:
            make_agent("strong", env_id)
        except ValueError as err:
            print(f"{env_id}: skipped ({err})\n")
            continue
        showcase(env_id, args.seed, args.full_prompts)
        if args.games:
            first, second = evaluate(env_id, args.games, args.seed)
            rows += [(env_id, "player_0", first), ("", "player_1", second), ("", "both", first.add(second))]
    if rows:
        print(RULE)
        print(f"Strong scripted agent vs uniformly random legal moves: {args.games} games per game, seed {args.seed}")
        print(RULE)
        print(summary_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
