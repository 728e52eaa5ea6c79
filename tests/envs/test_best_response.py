"""Against a fixed opponent a game is a bandit whose best reply is known exactly: the trainer must find it.

One round of Kuhn Poker scored in chips, against `RandomAgent`: the best response (fold a J to a bet, call with a
Q or a K, bet a J first, ...) and its value come from `kuhn_theory` by enumeration, and the trained policy,
measured at the 12 information states, is valued exactly against the same opponent. The uniform start is 0.46-0.49
chips a hand short of the best response. After 20 steps the trained weights (the last iterate) measured 0.14-0.25
short on seeds 0-3 (0.11-0.20 when the KL term was anchored to the starting model; it now pulls towards the
policy average, which moves slowly), so the test asserts under 0.30 on two seeds. (Trained on, the gap grows
again: docs/learning.md says what is known about that.) The policy a run ships, the average of its weights
(EMA 0.97), still holds 0.97^20 = 54% of the starting model at step 20 (0.27-0.31 short on seeds 0-3), so this
test of the trainer reads the last iterate's metrics.

TicTacToe against `RandomAgent`: the best reply's value comes from `game_helpers.value_against_random` by enumeration,
and the trained model's from 256 evaluation games.
"""

from __future__ import annotations

import json

import pytest
from game_helpers import value_against_random

from spiral_envs.games import kuhn_theory
from spiral_envs.games.kuhn_strategy import KUHN_STATE_NAMES, aggressive_action

ENV = "KuhnPoker-v1"
UNIFORM = kuhn_theory.round_policy_as_match_policy(kuhn_theory.uniform_round_policy())


def logged_round_policy(record: dict[str, float], env_id: str, prefix: str = "eval") -> dict[tuple, dict[str, float]]:
    """The measured first-hand policy back from an evaluation record's `<prefix>/<env_id>/policy/...` keys
    (`eval`: the shipped policy; `last_iterate`: the trained weights), as `kuhn_theory` takes it
    (card, betting) -> action -> probability: to judge a run after the fact."""
    policy = {}
    for card, line in kuhn_theory.INFO_STATES:
        legal = kuhn_theory.legal_actions(line)
        aggressive = aggressive_action(line)
        key = f"{prefix}/{env_id}/policy/{card}/{KUHN_STATE_NAMES[line]}/{aggressive}"
        if key not in record:
            raise KeyError(f"{key} is not in the record: was it an evaluation step with eval_probe_samples > 0?")
        p = record[key]
        policy[(card, line)] = {a: (p if a == aggressive else 1.0 - p) for a in legal}
    return policy


def best_response_gap(record: dict, prefix: str = "eval") -> float:
    """What a best response to `RandomAgent` gets that the measured policy does not, in chips, seats averaged."""
    policy = kuhn_theory.round_policy_as_match_policy(logged_round_policy(record, ENV, prefix))
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


def train_against_random(run_dir, seed: int, steps: int, eval_games: int, *game_args: str) -> list[dict]:
    """`spiral-train` against `RandomAgent`, evaluated against it at the start and the end: the records."""
    from spiral_train.cli import main
    from spiral_train.metrics import read_metrics

    args = [
        *game_args,
        "--opponent", "random",
        "--steps", str(steps),
        "--eval-every", str(steps),
        "--eval-opponents", "random",
        "--eval-games", str(eval_games),
        "--seed", str(seed),
        "--no-progress",
        "--run-dir", str(run_dir),
    ]  # fmt: skip
    assert main(args) == 0
    return read_metrics(run_dir)


@pytest.mark.learning
@pytest.mark.parametrize("seed", [0, 1])
def test_training_against_random_reaches_the_best_response(seed, spiral_cache, tmp_path):
    chips = json.dumps({ENV: {"num_rounds": 1, "scoring": "chips"}})
    records = train_against_random(tmp_path, seed, 20, 8, "--env-kwargs", chips, "--max-new-tokens", "12")
    evaluations = [r for r in records if f"eval/{ENV}/strategy/nash_conv" in r]
    first, last = best_response_gap(evaluations[0]), best_response_gap(evaluations[-1], "last_iterate")
    assert last < 0.30 < 0.35 < first, (first, last)
    assert evaluations[-1][f"last_iterate/{ENV}/strategy/invalid_rate"] < 0.05


TTT = "TicTacToe-v0"
TTT_BEST = sum(value_against_random(None, seat) for seat in (0, 1)) / 2
"""A best reply to `RandomAgent`, seats averaged: 0.960 (X 0.995, O 0.925); random play itself gets 0."""


@pytest.mark.learning
@pytest.mark.parametrize("seed", [0, 1])
def test_training_tictactoe_against_random_closes_the_gap_to_the_best_reply(seed, spiral_cache, tmp_path):
    """The warmed-up model plays close to uniform legal moves: its gap to the best reply measured 1.12-1.20
    (random play's own is 0.96; invalid answers lose). After 30 steps against `random` it measured 0.55-0.71,
    0.45-0.65 less, on seeds 0-3 (256 evaluation games: about 0.05 standard error). Not yet close to the best
    reply (docs/learning.md)."""
    records = train_against_random(tmp_path, seed, 30, 256, "--env-ids", TTT)
    evaluations = [r for r in records if f"eval/{TTT}/random/mean_return" in r]
    first, last = (TTT_BEST - r[f"eval/{TTT}/random/mean_return"] for r in (evaluations[0], evaluations[-1]))
    assert last < 0.85 and first - last > 0.3, (first, last)
    assert evaluations[-1][f"eval/{TTT}/strategy/invalid_rate"] < 0.05
