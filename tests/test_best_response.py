"""Against a fixed opponent a game is a bandit whose best reply is known exactly: the trainer must find it.

One round of Kuhn Poker scored in chips, against `RandomAgent`: the best response (fold a J to a bet, call with a
Q or a K, bet a J first, ...) and its value come from `kuhn_theory` by enumeration, and the trained policy,
measured at the 12 information states, is valued exactly against the same opponent. The uniform start is 0.40-0.44
chips a hand short of the best response; after 20 steps every seed measured here was 0.10-0.12 short (seeds 0-3),
so asserting under 0.2 on two seeds holds on any machine of this kind. (Trained on, the gap grows again, to
0.19-0.24 at step 80: docs/learning.md says what is known about that.)
"""

from __future__ import annotations

import json

import pytest

from spiral_envs.games import kuhn_theory
from spiral_train.strategy import KUHN_STATE_NAMES, aggressive_action, logged_round_policy

ENV = "KuhnPoker-v1"
UNIFORM = kuhn_theory.round_policy_as_match_policy(kuhn_theory.uniform_round_policy())


def best_response_gap(record: dict) -> float:
    """What a best response to `RandomAgent` gets that the measured policy does not, in chips, seats averaged."""
    policy = kuhn_theory.round_policy_as_match_policy(logged_round_policy(record, ENV))
    gaps = []
    for seat in (0, 1):
        best, _ = kuhn_theory.best_response(UNIFORM, 1, "chips", seat)
        players = (policy, UNIFORM) if seat == 0 else (UNIFORM, policy)
        own = 1 if seat == 0 else -1
        gaps.append(best - own * kuhn_theory.profile_value(*players, 1, "chips"))
    return sum(gaps) / 2


def test_the_gap_is_zero_for_the_best_response_and_positive_for_uniform_play():
    record = {}
    for seat in (0, 1):
        _, responder = kuhn_theory.best_response(UNIFORM, 1, "chips", seat)
        for card, line in kuhn_theory.INFO_STATES:
            if kuhn_theory.mover(1, line) == seat:
                action = aggressive_action(line)
                key = f"eval/{ENV}/policy/{card}/{KUHN_STATE_NAMES[line]}/{action}"
                record[key] = responder(1, 0, card, line)[action]
    assert best_response_gap(record) == pytest.approx(0.0, abs=1e-12)
    uniform = {key: 0.5 for key in record}
    assert best_response_gap(uniform) > 0.3


@pytest.mark.parametrize("seed", [0, 1])
def test_training_against_random_reaches_the_best_response(seed, spiral_cache, tmp_path):
    from spiral_train.cli import main
    from spiral_train.metrics import read_metrics

    run_dir = tmp_path / f"seed{seed}"
    args = [
        "--env-kwargs", json.dumps({ENV: {"num_rounds": 1, "scoring": "chips"}}),
        "--opponent", "random",
        "--steps", "20",
        "--eval-every", "20",
        "--eval-opponents", "random",
        "--eval-games", "8",
        "--max-new-tokens", "12",
        "--seed", str(seed),
        "--no-progress",
        "--run-dir", str(run_dir),
    ]  # fmt: skip
    assert main(args) == 0
    evaluations = [r for r in read_metrics(run_dir) if f"eval/{ENV}/strategy/nash_conv" in r]
    first, last = best_response_gap(evaluations[0]), best_response_gap(evaluations[-1])
    assert last < 0.2 < 0.35 < first, (first, last)
    assert evaluations[-1][f"eval/{ENV}/strategy/invalid_rate"] < 0.05
