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

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import torch

import spiral_envs
from spiral_envs.core import PLAYER_NAMES
from spiral_envs.games import kuhn_theory
from spiral_envs.games.kuhn_poker import KuhnPoker, KuhnPokerPolicyAgent, MatchPolicy
from spiral_envs.games.tictactoe import TicTacToe
from spiral_train.collector import AgentFactory, Collector, ModelPolicy, scripted
from spiral_train.metrics import env_key
from spiral_train.seats import EXPLOITER, FROZEN, LEARNER, GameResult, Match, other_role
from spiral_train.strategy import kuhn_strategy, tictactoe_strategy, wilson

EVAL_SEED_BASE = 1_000_000


def eval_matches(env_id: str, opponent: str, games: int) -> list[Match]:
    """`games` games on seeds 1e6.. against `opponent` (a seat kind), the model in seat player_0 for even games
    and player_1 for odd ones."""
    matches = []
    for i in range(games):
        model_role = PLAYER_NAMES[i % 2]
        matches.append(Match(env_id, EVAL_SEED_BASE + i, {model_role: LEARNER, other_role(model_role): opponent}))
    return matches


def exploiter_agents(exploiters: Mapping[str, Sequence[MatchPolicy]]) -> AgentFactory:
    """The "exploiter" seat: in a game of env id E, `exploiters[E][seat]`, the best-response match policy for
    that seat, seeded per game (plain data, like every scripted seat)."""
    return functools.partial(_exploiter_agent, {env_id: tuple(policies) for env_id, policies in exploiters.items()})


def _exploiter_agent(
    exploiters: dict[str, tuple[MatchPolicy, ...]], env_id: str, seed: int, role: str
) -> KuhnPokerPolicyAgent:
    return KuhnPokerPolicyAgent(exploiters[env_id][PLAYER_NAMES.index(role)], seed=seed)


def summarize(results: Sequence[GameResult]) -> dict[str, float]:
    """Rates with their Wilson intervals, the mean return, and each game's own outcome measures."""
    scores = [result.score(role) for result in results for role in result.match.learner_roles()]
    n = len(scores)
    metrics: dict[str, float] = {"mean_return": sum(s.value for s in scores) / max(1, n), "games": n}
    for name, rule in (("win_rate", "win"), ("draw_rate", "draw"), ("loss_rate", "loss"), ("invalid_rate", "invalid")):
        count = sum(getattr(score, rule) for score in scores)
        metrics[name] = count / max(1, n)
        metrics[f"{name}_lo"], metrics[f"{name}_hi"] = wilson(count, n)
    figures: dict[str, list[float]] = {}
    for score in scores:
        for name, value in score.figures.items():
            figures.setdefault(name, []).append(value)
    metrics.update({name: sum(values) / len(values) for name, values in figures.items()})
    return metrics


@dataclass(frozen=True)
class EvalCost:
    """What one evaluation samples: strategy-probe answers and games, each answer up to `max_new_tokens`."""

    probe_answers: int
    games: int
    max_new_tokens: int

    def __str__(self) -> str:
        return (
            f"{self.probe_answers} strategy-probe answers and {self.games} games, "
            f"answers up to {self.max_new_tokens} tokens"
        )


def probe_plan(
    env_ids: Sequence[str], env_kwargs: Mapping[str, dict], samples: int, positions: int
) -> dict[str, tuple[str, int]]:
    """Env id -> (its theory, the probe answers its strategy metrics sample): ("kuhn", 12 states x `samples`)
    or ("tictactoe", `positions` x samples // 8, at least 1); games without a theory, or `samples` 0, absent."""
    plan = {}
    for env_id in env_ids if samples else ():
        game = spiral_envs.make(env_id, **env_kwargs.get(env_id, {})).game
        if isinstance(game, KuhnPoker):
            plan[env_id] = ("kuhn", len(kuhn_theory.INFO_STATES) * samples)
        elif isinstance(game, TicTacToe):
            plan[env_id] = ("tictactoe", positions * (samples // 8 or 1))
    return plan


def eval_cost(
    env_ids: Sequence[str],
    env_kwargs: Mapping[str, dict],
    opponents: Sequence[str],
    games: int,
    probe_samples: int,
    probe_positions: int,
    max_new_tokens: int,
) -> EvalCost:
    """What `evaluate` with these settings samples (games: per env, the opponents it is played against)."""
    probes = probe_plan(env_ids, env_kwargs, probe_samples, probe_positions)
    played = sum(games for env_id in env_ids for opponent in opponents if _played(env_id, opponent, probes))
    return EvalCost(sum(n for _, n in probes.values()), played, max_new_tokens)


def _played(env_id: str, opponent: str, probes: Mapping[str, tuple[str, int]]) -> bool:
    """Whether `evaluate` plays `env_id` against `opponent`, given its `probe_plan`: only Kuhn Poker has an exact
    best response to the measured policy (the exploiter), and a game with no scripted expert (a TextArena game)
    is measured against the other opponents."""
    if opponent == EXPLOITER:
        return probes.get(env_id, ("",))[0] == "kuhn"
    return opponent != "strong" or spiral_envs.spec(env_id).load_expert() is not None


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
    probe_positions: int = 120,
    progress: bool = False,
) -> dict[str, float]:
    """Strategy metrics (with `probe_samples` answers per decision point, at `probe_positions` TicTacToe
    positions; 0 samples skips them), then games against each opponent; keys as in the module docstring. An
    opponent named in `model_opponents` (a label, e.g. a checkpoint's folder) is that model, playing the
    "frozen" seat; the others are seat kinds. The games against scripted opponents are played in one batch,
    all of them in flight together. `progress`: a bar with an estimate for the probes and one for the games."""
    model_opponents = model_opponents or {}
    device = policy.torch_rng.device
    eval_policy = replace(
        policy,
        temperature=temperature,
        torch_rng=torch.Generator(device=device).manual_seed(EVAL_SEED_BASE + seed),
    )
    metrics: dict[str, float] = {}
    probes = probe_plan(env_ids, collector.env_kwargs, probe_samples, probe_positions)
    exploiters: dict[str, tuple[MatchPolicy, ...]] = {}
    bar = _bar(sum(n for _, n in probes.values()), "eval: strategy probes", "answer", progress)
    for env_id, (theory, _) in probes.items():
        kwargs = collector.env_kwargs.get(env_id, {})
        if theory == "kuhn":
            found, exploiters[env_id] = kuhn_strategy(
                eval_policy, env_id, kwargs, probe_samples, seed=seed, on_answers=bar.update
            )
        else:
            found = tictactoe_strategy(
                eval_policy, env_id, kwargs, probe_samples // 8 or 1, probe_positions, on_answers=bar.update
            )
        metrics.update({f"eval/{env_key(env_id)}/{key}": value for key, value in found.items()})
    bar.close()
    planned: list[tuple[str, str, list[Match]]] = []  # (env id, opponent label, its games)
    players: dict[str, ModelPolicy | AgentFactory] = {LEARNER: eval_policy}
    for env_id in env_ids:
        for opponent in opponents:
            if not _played(env_id, opponent, probes):
                continue
            kind = FROZEN if opponent in model_opponents else opponent
            if kind == EXPLOITER:  # in each game, the best response to the policy measured in that game
                players[kind] = exploiter_agents(exploiters)
            elif kind != FROZEN:
                players[kind] = scripted(opponent)
            planned.append((env_id, opponent, eval_matches(env_id, kind, games)))
    bar = _bar(sum(len(m) for *_, m in planned), "eval: games", "game", progress)
    scripted_games = [m for _, opponent, ms in planned if opponent not in model_opponents for m in ms]
    done = iter(collector.play(scripted_games, players, keep_transcripts=False, on_finished=lambda _: bar.update()))
    for env_id, opponent, matches in planned:
        if opponent in model_opponents:  # one model opponent at a time: each is the "frozen" seat
            frozen = {LEARNER: eval_policy, FROZEN: model_opponents[opponent]}
            results = collector.play(matches, frozen, keep_transcripts=False, on_finished=lambda _: bar.update())
        else:
            results = [next(done) for _ in matches]
        for key, value in summarize(results).items():
            metrics[f"eval/{env_key(env_id)}/{opponent}/{key}"] = value
    bar.close()
    return metrics


def _bar(total: int, desc: str, unit: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled or total == 0, leave=False, dynamic_ncols=True)
