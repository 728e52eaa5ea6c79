"""Evaluation: outcome rates against fixed opponents, and strategy metrics by the game's own theory.

Evaluation uses its own seeds and its own sampling RNG, so running it (or not) never changes the training
games: a resumed run and an uninterrupted one stay identical.

Keys are `eval/<env_id>/<opponent>/<metric>` for games against an opponent (win, draw, loss and invalid
rates, each with its 95% Wilson interval as `<rate>_lo` / `<rate>_hi`; mean return; chips per round in Kuhn
Poker; deal rate and value gain in a negotiation) and `eval/<env_id>/strategy/...`, `eval/<env_id>/policy/...`
for the strategy metrics (`spiral_train.strategy`). The "exploiter" opponent plays an exact best response to
the policy the strategy metrics just measured (Kuhn Poker only; other games skip it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import torch

import spiral_envs
from spiral_envs.games.kuhn_poker import KuhnPoker, KuhnPokerPolicyAgent
from spiral_envs.games.tictactoe import TicTacToe
from spiral_train.collector import Collector, GameResult, Match, ModelPolicy
from spiral_train.strategy import kuhn_strategy, tictactoe_strategy, wilson

EVAL_SEED_BASE = 1_000_000


def eval_matches(
    env_id: str, opponent: str, policy: ModelPolicy, games: int, exploiter: Sequence[Callable] | None = None
) -> list[Match]:
    """`games` games on seeds 1e6.., the model in seat player_0 for even games and player_1 for odd ones.

    `exploiter[seat]` is the best-response match policy for that seat, for opponent "exploiter"."""
    matches = []
    for i in range(games):
        seed = EVAL_SEED_BASE + i
        model_role, other_role = ("player_0", "player_1") if i % 2 == 0 else ("player_1", "player_0")
        if opponent == "exploiter":
            agent = KuhnPokerPolicyAgent(exploiter[int(other_role[-1])], seed=seed)
        else:
            agent = spiral_envs.make_agent(opponent, env_id, seed=seed)
        matches.append(Match(env_id, seed, {model_role: policy, other_role: agent}))
    return matches


def summarize(results: Sequence[GameResult], policy: ModelPolicy) -> dict[str, float]:
    """Rates with their Wilson intervals, the mean return, and each game's own outcome measures."""
    wins = draws = losses = invalid = 0
    total_return = 0.0
    chips_per_round: list[float] = []
    deals = 0
    gains: list[float] = []
    for result in results:
        role = next(r for r, seat in result.match.seats.items() if seat is policy)
        value = result.returns[role]
        total_return += value
        wins += value > 0
        draws += value == 0
        losses += value < 0
        invalid += bool(result.outcome.get("invalid_move")) and value < 0
        outcome = result.outcome
        if "chips" in outcome and "round" in outcome:
            chips_per_round.append(outcome["chips"][role] / outcome["round"])
        if "value_gain" in outcome:
            deals += bool(outcome.get("trades"))
            gains.append(outcome["value_gain"][role])
    n = len(results)
    metrics: dict[str, float] = {"mean_return": total_return / max(1, n), "games": n}
    for name, count in (("win_rate", wins), ("draw_rate", draws), ("loss_rate", losses), ("invalid_rate", invalid)):
        metrics[name] = count / max(1, n)
        metrics[f"{name}_lo"], metrics[f"{name}_hi"] = wilson(count, n)
    if chips_per_round:
        metrics["chips_per_round"] = sum(chips_per_round) / len(chips_per_round)
    if gains:
        metrics["deal_rate"] = deals / n
        metrics["value_gain"] = sum(gains) / len(gains)
    return metrics


def evaluate(
    policy: ModelPolicy,
    env_ids: Sequence[str],
    opponents: Sequence[str],
    games: int,
    temperature: float,
    collector: Collector,
    seed: int = 0,
    probe_samples: int = 64,
) -> dict[str, float]:
    """Strategy metrics (with `probe_samples` answers per decision point; 0 skips them), then games against
    each opponent; keys as in the module docstring."""
    device = policy.torch_rng.device
    eval_policy = replace(
        policy,
        temperature=temperature,
        trainable=False,
        torch_rng=torch.Generator(device=device).manual_seed(EVAL_SEED_BASE + seed),
    )
    metrics: dict[str, float] = {}
    for env_id in env_ids:
        kwargs = collector.env_kwargs.get(env_id, {})
        game = spiral_envs.make(env_id, **kwargs).game
        exploiter = None
        found: dict[str, float] = {}
        if probe_samples and isinstance(game, KuhnPoker):
            found, exploiter = kuhn_strategy(eval_policy, env_id, kwargs, probe_samples, seed=seed)
        elif probe_samples and isinstance(game, TicTacToe):
            found = tictactoe_strategy(eval_policy, env_id, kwargs, probe_samples // 8 or 1)
        metrics.update({f"eval/{env_id}/{key}": value for key, value in found.items()})
        for opponent in opponents:
            if opponent == "exploiter" and exploiter is None:
                continue  # only Kuhn Poker has an exact best response to the measured policy
            matches = eval_matches(env_id, opponent, eval_policy, games, exploiter)
            results = collector.play(matches, keep_transcripts=False)
            for key, value in summarize(results, eval_policy).items():
                metrics[f"eval/{env_id}/{opponent}/{key}"] = value
    return metrics
