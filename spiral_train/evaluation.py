"""Evaluation: outcome rates against fixed opponents, and strategy metrics by the game's own theory.

Evaluation uses its own seeds and its own sampling RNG, so running it (or not) never changes the training
games: a resumed run and an uninterrupted one stay identical.

Keys are `eval/<env>/<opponent>/<metric>` (`<env>` is the env id with a namespace's "/" written ":",
`metrics.env_key`) for games against an opponent (win, draw, loss and invalid
rates, each with its 95% Wilson interval as `<rate>_lo` / `<rate>_hi`; mean return; chips per round in Kuhn
Poker; deal rate and value gain in a negotiation) and `eval/<env>/strategy/...`, `eval/<env>/policy/...`
for the strategy metrics (`spiral_train.strategy`). The "exploiter" opponent plays an exact best response to
the policy the strategy metrics just measured (Kuhn Poker only; other games skip it); "strong" is skipped
for a game with no scripted expert (TextArena's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import torch

import spiral_envs
from spiral_envs.games.kuhn_poker import KuhnPoker, KuhnPokerPolicyAgent, MatchPolicy
from spiral_envs.games.tictactoe import TicTacToe
from spiral_train.collector import AgentFactory, Collector, ModelPolicy, Players, scripted
from spiral_train.metrics import env_key
from spiral_train.seats import EXPLOITER, FROZEN, LEARNER, ROLES, GameResult, Match, other_role
from spiral_train.strategy import kuhn_strategy, tictactoe_strategy, wilson

EVAL_SEED_BASE = 1_000_000


def eval_matches(env_id: str, opponent: str, games: int) -> list[Match]:
    """`games` games on seeds 1e6.. against `opponent` (a seat kind), the model in seat player_0 for even games
    and player_1 for odd ones."""
    matches = []
    for i in range(games):
        model_role = ROLES[i % 2]
        matches.append(Match(env_id, EVAL_SEED_BASE + i, {model_role: LEARNER, other_role(model_role): opponent}))
    return matches


def exploiter_agents(exploiter: Sequence[MatchPolicy]) -> AgentFactory:
    """The "exploiter" seat: `exploiter[seat]`, the best-response match policy for that seat, seeded per game."""
    return lambda env_id, seed, role: KuhnPokerPolicyAgent(exploiter[ROLES.index(role)], seed=seed)


def summarize(results: Sequence[GameResult]) -> dict[str, float]:
    """Rates with their Wilson intervals, the mean return, and each game's own outcome measures."""
    wins = draws = losses = invalid = 0
    total_return = 0.0
    chips_per_round: list[float] = []
    deals = 0
    gains: list[float] = []
    for result in results:
        (role,) = result.match.learner_roles()
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
    model_opponents: Mapping[str, ModelPolicy] | None = None,
) -> dict[str, float]:
    """Strategy metrics (with `probe_samples` answers per decision point; 0 skips them), then games against
    each opponent; keys as in the module docstring. An opponent named in `model_opponents` (a label, e.g. a
    checkpoint's folder) is that model, playing the "frozen" seat; the others are seat kinds."""
    model_opponents = model_opponents or {}
    device = policy.torch_rng.device
    eval_policy = replace(
        policy,
        temperature=temperature,
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
        metrics.update({f"eval/{env_key(env_id)}/{key}": value for key, value in found.items()})
        for opponent in opponents:
            if opponent == EXPLOITER and exploiter is None:
                continue  # only Kuhn Poker has an exact best response to the measured policy
            if opponent == "strong" and spiral_envs.spec(env_id).load_expert() is None:
                continue  # a game with no scripted expert (a TextArena game) is measured against the others
            if opponent in model_opponents:
                kind, player = FROZEN, model_opponents[opponent]
            else:
                kind, player = opponent, exploiter_agents(exploiter) if opponent == EXPLOITER else scripted(opponent)
            players: Players = {LEARNER: eval_policy, kind: player}
            results = collector.play(eval_matches(env_id, kind, games), players, keep_transcripts=False)
            for key, value in summarize(results).items():
                metrics[f"eval/{env_key(env_id)}/{opponent}/{key}"] = value
    return metrics
