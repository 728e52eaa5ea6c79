"""Evaluation: outcome rates against fixed opponents, and strategy metrics by the game's own theory.

Evaluation uses its own seeds and its own sampling RNG, so running it (or not) never changes the training
games: a resumed run and an uninterrupted one stay identical.

Keys are `eval/<env>/<opponent>/<metric>` (`<env>` is the env id with a namespace's "/" written ":",
`metrics.env_key`) for games against an opponent (win, draw, loss and invalid
rates, each with its 95% Wilson interval as `<rate>_lo` / `<rate>_hi`; mean return; each game's own figures,
such as chips per round in Kuhn Poker) and `eval/<env>/<key>` for the metrics of the game's registered theory
(`spiral_envs.theory`: e.g. `strategy/nash_conv`, `match/nash_conv`, `policy/...`), measured from the model's
answers at its probes, sampled here. The "exploiter" opponent plays what the theory built from the policy it
just measured (Kuhn Poker: an exact best response; games whose theory builds none skip it); "strong" is
skipped for a game with no scripted expert (TextArena's).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import torch

import spiral_envs
from spiral_envs.core import PLAYER_NAMES
from spiral_envs.stats import rate
from spiral_envs.theory import Answer, ExploiterFactory, GameTheory, Measurement, Probe
from spiral_train.metrics import env_key
from spiral_train.rollout.collector import AgentFactory, Collector, ModelPolicy, scripted
from spiral_train.rollout.records import EXPLOITER, FROZEN, LEARNER, GameResult, Match, other_role

EVAL_SEED_BASE = 1_000_000


def eval_matches(env_id: str, opponent: str, games: int) -> list[Match]:
    """`games` games on seeds 1e6.. against `opponent` (a seat kind), the model in seat player_0 for even games
    and player_1 for odd ones."""
    matches = []
    for i in range(games):
        model_role = PLAYER_NAMES[i % 2]
        matches.append(Match(env_id, EVAL_SEED_BASE + i, {model_role: LEARNER, other_role(model_role): opponent}))
    return matches


def exploiter_agents(exploiters: Mapping[str, ExploiterFactory]) -> AgentFactory:
    """The "exploiter" seat: in a game of env id E, `exploiters[E](seed, role)`, the exploiter its theory built
    from the policy it measured (plain data, like every scripted seat)."""
    return functools.partial(_exploiter_agent, dict(exploiters))


def _exploiter_agent(exploiters: dict[str, ExploiterFactory], env_id: str, seed: int, role: str) -> spiral_envs.Agent:
    return exploiters[env_id](seed, role)


PROBE_CHUNK = 256
"""Answers sampled per generation call at the probes (a call is where progress is reported)."""


def sample_answers(
    policy: ModelPolicy,
    probes: Sequence[Probe],
    samples: int | Sequence[int],
    on_answers: Callable[[int], None] | None = None,
) -> list[list[Answer]]:
    """`samples` answers of `policy` at each probe's prompt (or `samples[i]` at `probes[i]`), in batched
    generation calls of `PROBE_CHUNK` answers (each followed by `on_answers(count)`); an answer cut off at the
    token limit is marked `cut_off` when the policy counts that as no move (`truncated_is_invalid`, as in play)."""
    counts = [samples] * len(probes) if isinstance(samples, int) else list(samples)
    if len(counts) != len(probes):
        raise ValueError(f"{len(counts)} sample counts for {len(probes)} probes; give one per probe")
    prompts = policy.prompt_ids([p.observation for p, n in zip(probes, counts) for _ in range(n)])
    generations = []
    for start in range(0, len(prompts), PROBE_CHUNK):
        piece = prompts[start : start + PROBE_CHUNK]
        generations.extend(policy.sample(piece))
        if on_answers is not None:
            on_answers(len(piece))
    answers = [Answer(g.text, g.finish_reason == "length" and policy.truncated_is_invalid) for g in generations]
    ends = list(itertools.accumulate(counts))
    return [answers[end - n : end] for n, end in zip(counts, ends)]


def measure_strategy(
    policy: ModelPolicy,
    theory: GameTheory,
    samples: int,
    positions: int,
    seed: int = 0,
    on_answers: Callable[[int], None] | None = None,
) -> Measurement:
    """The theory's measurement of `policy`: its answers at the theory's probes (`samples` per decision point, as
    the theory spends them: `theory.samples_at(probe, samples)` at each; `positions` for a game that samples
    positions), as the theory reads them."""
    probes = theory.probes(positions)
    answers = sample_answers(policy, probes, [theory.samples_at(p, samples) for p in probes], on_answers)
    return theory.measure(probes, answers, seed=seed)


def summarize(results: Sequence[GameResult]) -> dict[str, float]:
    """Rates with their Wilson intervals, the mean return, and each game's own outcome measures."""
    scores = [result.score(role) for result in results for role in result.match.learner_roles()]
    n = len(scores)
    metrics: dict[str, float] = {"mean_return": sum(s.value for s in scores) / max(1, n), "games": n}
    for name, rule in (("win_rate", "win"), ("draw_rate", "draw"), ("loss_rate", "loss"), ("invalid_rate", "invalid")):
        metrics.update(rate(name, sum(getattr(score, rule) for score in scores), n))
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


def probe_plan(env_ids: Sequence[str], env_kwargs: Mapping[str, dict], samples: int) -> dict[str, GameTheory]:
    """Env id -> its registered theory (`spiral_envs.theory`), built for the env's options; games without one,
    or `samples` 0, absent."""
    plan = {}
    for env_id in env_ids if samples else ():
        theory = spiral_envs.spec(env_id).load_theory()
        if theory is not None:
            plan[env_id] = theory(env_id, env_kwargs.get(env_id, {}))
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
    plan = probe_plan(env_ids, env_kwargs, probe_samples)
    played = sum(games for env_id in env_ids for opponent in opponents if _played(env_id, opponent, plan))
    answers = sum(theory.probe_answers(probe_samples, probe_positions) for theory in plan.values())
    return EvalCost(answers, played, max_new_tokens)


def _played(env_id: str, opponent: str, plan: Mapping[str, GameTheory]) -> bool:
    """Whether `evaluate` plays `env_id` against `opponent`, given its `probe_plan`: the exploiter only where the
    game's theory builds one from the policy it measures, and a game with no scripted expert (a TextArena game)
    is measured against the other opponents."""
    if opponent == EXPLOITER:
        return env_id in plan and plan[env_id].has_exploiter
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
    """Strategy metrics of each game's registered theory (with `probe_samples` answers per decision point, at
    `probe_positions` positions for a theory that samples positions, TicTacToe's; 0 samples skips them), then
    games against each opponent; keys as in the module docstring. An opponent named in `model_opponents` (a
    label, e.g. a checkpoint's folder) is that model, playing the "frozen" seat; the others are seat kinds. The
    games against scripted opponents are played in one batch, all of them in flight together. `progress`: a bar
    with an estimate for the probes and one for the games."""
    model_opponents = model_opponents or {}
    device = policy.torch_rng.device
    eval_policy = replace(
        policy,
        temperature=temperature,
        torch_rng=torch.Generator(device=device).manual_seed(EVAL_SEED_BASE + seed),
    )
    metrics: dict[str, float] = {}
    plan = probe_plan(env_ids, collector.env_kwargs, probe_samples)
    exploiters: dict[str, ExploiterFactory] = {}
    total = sum(theory.probe_answers(probe_samples, probe_positions) for theory in plan.values())
    bar = _bar(total, "eval: strategy probes", "answer", progress)
    for env_id, theory in plan.items():
        found = measure_strategy(eval_policy, theory, probe_samples, probe_positions, seed, bar.update)
        if found.exploiter is not None:
            exploiters[env_id] = found.exploiter
        metrics.update({f"eval/{env_key(env_id)}/{key}": value for key, value in found.metrics.items()})
    bar.close()
    planned: list[tuple[str, str, list[Match]]] = []  # (env id, opponent label, its games)
    players: dict[str, ModelPolicy | AgentFactory] = {LEARNER: eval_policy}
    for env_id in env_ids:
        for opponent in opponents:
            if not _played(env_id, opponent, plan):
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
