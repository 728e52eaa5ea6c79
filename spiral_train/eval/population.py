"""Population evaluation: a round-robin of checkpoints (and scripted anchors), rated by maximum likelihood.

Does self-play keep improving? Win rate against a fixed opponent saturates, and against the last policy it
is always about even; ratings over a run's checkpoints show it. Every pair of members plays `games` games
(half in each seat, fixed seeds); a draw counts half a win. The ratings are the Elo scale's maximum-
likelihood (Bradley-Terry) fit, P(i beats j) = 1 / (1 + 10^((r_j - r_i) / 400)), with the first member held
at 0, and each rating's standard error from the inverse Fisher information.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from spiral_train.eval.games import eval_matches
from spiral_train.rollout.collector import AgentFactory, Collector, ModelPolicy
from spiral_train.rollout.records import FROZEN, LEARNER

ELO = 400.0 / math.log(10.0)
"""Elo points per unit of the logistic scale."""


@dataclass(frozen=True)
class PairResult:
    """`first` against `second` over `games` games: `score` is first's wins plus half its draws."""

    first: str
    second: str
    games: int
    score: float
    invalid: int
    """Games `first` lost by an invalid answer."""


def round_robin(
    env_id: str,
    members: Mapping[str, ModelPolicy | AgentFactory],
    games: int,
    collector: Collector,
    progress: bool = True,
) -> list[PairResult]:
    """Every pair with at least one model plays `games` games on fixed seeds, the model as the first side."""
    from tqdm.auto import tqdm

    names = list(members)
    pairs = []  # (first, second): the first side is a model (two scripted anchors need no games)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if isinstance(members[a], ModelPolicy):
                pairs.append((a, b))
            elif isinstance(members[b], ModelPolicy):
                pairs.append((b, a))
    results = []
    for first, second in tqdm(pairs, disable=not progress, desc=f"round robin {env_id}", unit="pair"):
        kind = FROZEN if isinstance(members[second], ModelPolicy) else second
        players = {LEARNER: members[first], kind: members[second]}
        played = collector.play(eval_matches(env_id, kind, games), players, keep_transcripts=False)
        scores = [result.score(role) for result in played for role in result.match.learner_roles()]
        points = sum(score.points for score in scores)
        results.append(PairResult(first, second, len(played), points, sum(score.invalid for score in scores)))
    return results


def elo_ratings(
    names: Sequence[str], results: Sequence[PairResult], iterations: int = 200
) -> dict[str, tuple[float, float]]:
    """Member -> (rating, standard error) by maximum likelihood, the first member at 0 (its error 0).

    A member that won or lost every game has no finite maximum; a weak prior (one draw against each other
    member, worth 1/100 of a game) keeps every rating finite without moving the others measurably.
    """
    index = {name: i for i, name in enumerate(names)}
    n = len(names)
    if n < 2:
        raise ValueError("ratings need two members or more")
    wins = np.zeros((n, n))
    played = np.zeros((n, n))
    prior = 0.01
    for i in range(n):
        for j in range(n):
            if i != j:
                wins[i, j] += prior / 2
                played[i, j] += prior
    for r in results:
        i, j = index[r.first], index[r.second]
        wins[i, j] += r.score
        wins[j, i] += r.games - r.score
        played[i, j] += r.games
        played[j, i] += r.games
    theta = np.zeros(n)
    for _ in range(iterations):  # Newton's method on the concave log-likelihood, theta[0] held at 0
        p = 1.0 / (1.0 + np.exp(theta[None, :] - theta[:, None]))  # p[i, j] = P(i beats j)
        grad = (wins - played * p).sum(axis=1)
        w = played * p * (1.0 - p)
        hessian = -np.diag(w.sum(axis=1)) + w
        step = np.linalg.solve(hessian[1:, 1:], grad[1:])
        theta[1:] -= step
        if np.abs(step).max() < 1e-10:
            break
    p = 1.0 / (1.0 + np.exp(theta[None, :] - theta[:, None]))
    w = played * p * (1.0 - p)
    information = np.diag(w.sum(axis=1)) - w
    covariance = np.linalg.inv(information[1:, 1:])
    errors = np.concatenate([[0.0], np.sqrt(np.diag(covariance))])
    return {name: (float(theta[i] * ELO), float(errors[i] * ELO)) for i, name in enumerate(names)}


def plot_ratings(ratings: Mapping[str, tuple[float, float]], steps: Mapping[str, int], out: str) -> None:
    """Rating against training step for the checkpoints (with one standard error as bars), anchors as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    points = sorted((steps[name], *ratings[name]) for name in ratings if name in steps)
    if points:
        ax.errorbar(
            [p[0] for p in points],
            [p[1] for p in points],
            yerr=[p[2] for p in points],
            marker="o",
            capsize=3,
            label="checkpoints",
        )
    for name, (rating, _) in ratings.items():
        if name not in steps:
            ax.axhline(rating, linestyle="--", alpha=0.6, label=name, color="C1" if name == "strong" else "C2")
    ax.set_xlabel("training step")
    ax.set_ylabel("Elo (maximum likelihood; first member = 0)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
