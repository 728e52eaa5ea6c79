"""Win, draw, loss and invalid rates of the model against fixed opponents, on fixed seeds.

Evaluation uses its own seeds and its own sampling RNG, so running it (or not) never changes the training
games: a resumed run and an uninterrupted one stay identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

import spiral_envs
from spiral_train.collector import Collector, GameResult, Match, ModelPolicy

EVAL_SEED_BASE = 1_000_000


def eval_matches(env_id: str, opponent: str, policy: ModelPolicy, games: int) -> list[Match]:
    """`games` games on seeds 1e6.., the model in seat player_0 for even games and player_1 for odd ones."""
    matches = []
    for i in range(games):
        agent = spiral_envs.make_agent(opponent, env_id, seed=EVAL_SEED_BASE + i)
        model_role, other_role = ("player_0", "player_1") if i % 2 == 0 else ("player_1", "player_0")
        matches.append(Match(env_id, EVAL_SEED_BASE + i, {model_role: policy, other_role: agent}))
    return matches


def summarize(results: Sequence[GameResult], policy: ModelPolicy) -> dict[str, float]:
    wins = draws = losses = invalid = 0
    for result in results:
        role = next(r for r, seat in result.match.seats.items() if seat is policy)
        value = result.returns[role]
        wins += value > 0
        draws += value == 0
        losses += value < 0
        invalid += bool(result.outcome.get("invalid_move")) and value < 0
    n = max(1, len(results))
    return {"win_rate": wins / n, "draw_rate": draws / n, "loss_rate": losses / n, "invalid_rate": invalid / n}


def evaluate(
    policy: ModelPolicy,
    env_ids: Sequence[str],
    opponents: Sequence[str],
    games: int,
    temperature: float,
    collector: Collector,
    seed: int = 0,
) -> dict[str, float]:
    """Metrics keyed `eval/<env_id>/<opponent>/<rate>`."""
    device = policy.torch_rng.device
    eval_policy = replace(
        policy,
        temperature=temperature,
        trainable=False,
        torch_rng=torch.Generator(device=device).manual_seed(EVAL_SEED_BASE + seed),
    )
    metrics: dict[str, float] = {}
    for env_id in env_ids:
        for opponent in opponents:
            results = collector.play(eval_matches(env_id, opponent, eval_policy, games), keep_transcripts=False)
            for key, value in summarize(results, eval_policy).items():
                metrics[f"eval/{env_id}/{opponent}/{key}"] = value
    return metrics
