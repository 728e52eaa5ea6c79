"""Strategy metrics: probes are the states the theory names, the arithmetic is exact, a real model runs them."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from game_helpers import KuhnPokerNashAgent
from transformers import AutoModelForCausalLM, AutoTokenizer

import spiral_envs
from spiral_envs.games import kuhn_theory
from spiral_envs.games.kuhn_strategy import KuhnPokerTheory, round_policy
from spiral_envs.games.tictactoe_strategy import TicTacToeTheory
from spiral_envs.stats import wilson
from spiral_envs.theory import Answer
from spiral_train.eval.games import evaluate, measure_strategy, sample_answers
from spiral_train.rollout.collector import Collector, ModelPolicy
from spiral_train.rollout.generation import HFGenerator

ONE_ROUND_CHIPS = {"num_rounds": 1, "scoring": "chips"}


def model_policy(path, max_new_tokens: int = 8) -> ModelPolicy:
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    generator = HFGenerator(model, tokenizer)
    return ModelPolicy(generator, tokenizer, "qwen3", 1.0, max_new_tokens, torch.Generator().manual_seed(0))


def test_kuhn_probes_start_with_the_twelve_first_hand_states_as_the_env_shows_them():
    probes = KuhnPokerTheory("KuhnPoker-v1").probes()[:12]
    assert [p.key.state for p in probes] == list(kuhn_theory.INFO_STATES)
    for probe in probes:
        card, betting = probe.key.state
        assert f"Your card: {card}." in probe.observation
        assert "Round 1 of 5" in probe.observation
        assert probe.legal == tuple(f"[{a}]" for a in kuhn_theory.legal_actions(betting))


def test_the_exact_equilibrium_read_through_the_probes_is_unexploitable():
    """Counts in the proportions of the one-round Nash strategy must give NashConv 0 in one-round chips: the
    probes' keys, the renormalisation and the theory's states all line up."""
    probes = KuhnPokerTheory("KuhnPoker-v1", ONE_ROUND_CHIPS).probes()
    nash = KuhnPokerNashAgent(alpha=Fraction(1, 3))
    counts = []
    for probe in probes:
        card, betting = probe.key.state
        view = {"card": card, "betting": betting, "starts": len(betting) % 2 == 0}
        counts.append({f"[{a}]": int(p * 300) for a, p in nash.policy(view).items()})
    measured = round_policy(probes, counts)
    conv = kuhn_theory.nash_conv(kuhn_theory.round_policy_as_match_policy(measured), 1, "chips")
    assert conv == pytest.approx(0.0, abs=1e-12)
    always = [{text: 300 * (text in ("[bet]", "[call]")) for text in p.legal} for p in probes]
    conv = kuhn_theory.nash_conv(kuhn_theory.round_policy_as_match_policy(round_policy(probes, always)), 1, "chips")
    assert conv > 0.5


HOSTILE = [
    "\\boxed{[bet]}",
    "I bet. \\boxed{ BET }",
    "\\boxed{\\text{call}}",
    "[[check]]",
    "[Fold] then \\boxed{[raise]}",
    "bet",
    "",
    "\\boxed{[bet]",
    "[call] [check]",
]


@pytest.mark.parametrize("answer", HOSTILE)
def test_a_probe_answer_is_valid_exactly_when_the_env_plays_it(answer):
    """Probes read answers with the env's own reading (`read_move`): same move, same verdict, at every state."""
    theory = KuhnPokerTheory("KuhnPoker-v1")
    env = spiral_envs.make("KuhnPoker-v1")
    for probe in theory.probes()[:12]:  # the first hand's (later nodes are reached the same way, by the env)
        card, line = probe.key.state
        for seed in range(100):  # the probe's position, played again in a fresh env
            env.reset(seed=seed)
            for move in line:
                env.step(spiral_envs.boxed(f"[{move}]"))
            if str(env.observe(env.agent_selection)) == probe.observation:
                break
        mover = env.agent_selection
        assert env.infos[mover]["view"]["card"] == card
        env.step(answer)
        played = None if env.infos[mover].get("invalid_move") else env.transcript[-1]["move"]
        assert theory.read(probe, Answer(answer)) == played, (probe.key, answer)
        assert theory.read(probe, Answer(answer, cut_off=True)) is None  # cut off: no move, as in play


def test_wilson_interval_matches_the_closed_form():
    assert wilson(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    assert wilson(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-5)
    lo, hi = wilson(30, 64)
    assert lo < 30 / 64 < hi
    assert wilson(0, 0) == (0.0, 1.0)


def test_tictactoe_probes_hold_distinct_positions_with_their_minimax_moves():
    probes = TicTacToeTheory("TicTacToe-v0").probes(120)
    assert len({p.key for p in probes}) == 120
    for probe in probes:
        assert probe.optimal and probe.optimal <= set(probe.legal)
        board, player = probe.key
        assert board.count(None) == len(probe.legal)
        assert f"You are Player {player}" in probe.observation


def test_kuhn_strategy_metrics_of_a_real_model(quick_model):
    policy = model_policy(quick_model)
    theory = KuhnPokerTheory("KuhnPoker-v1", ONE_ROUND_CHIPS)
    theory.bootstrap = 20
    measured = measure_strategy(policy, theory, samples=16, positions=0)
    metrics, exploiter = measured.metrics, measured.exploiter
    assert 0.0 <= metrics["strategy/nash_conv_lo"] <= metrics["strategy/nash_conv_hi"]
    assert metrics["strategy/nash_conv"] >= 0.0
    assert len([k for k in metrics if k.startswith("policy/")]) == 12
    assert 0.0 <= metrics["strategy/invalid_rate_lo"] <= metrics["strategy/invalid_rate"] <= 1.0
    gains = metrics["strategy/best_response_gain/player_0"] + metrics["strategy/best_response_gain/player_1"]
    assert gains == pytest.approx(metrics["strategy/nash_conv"])
    # the exploiter is a policy the env's agents can play, in either seat
    env = spiral_envs.make("KuhnPoker-v1", **ONE_ROUND_CHIPS)
    env.reset(seed=3)
    for seat in (0, 1):
        agent = exploiter(0, env.possible_agents[seat])
        env.reset(seed=3)
        if seat == 1:
            env.step(spiral_envs.boxed("[check]"))
        answer = agent(str(env.observe(env.agent_selection)), env.infos[env.agent_selection])
        env.step(answer)
        assert not env.infos[env.possible_agents[seat]].get("invalid_move", False)


def test_the_whole_match_is_sampled_as_the_theory_asks_and_measured(quick_model):
    """Later nodes get fewer answers than the first hand (`samples_at`), the count the cost line prints
    (`probe_answers`) is what is sampled, and the whole-match figures come beside the first hand's."""
    policy = model_policy(quick_model)
    theory = KuhnPokerTheory("KuhnPoker-v1", {"num_rounds": 2, "history": "current"})
    theory.bootstrap = 10
    probes = theory.probes()
    counts = [theory.samples_at(p, 8) for p in probes]
    assert counts[:12] == [8] * 12 and 0 < min(counts[12:]) < 8 and sum(counts) == theory.probe_answers(8, 0)
    answers = sample_answers(policy, probes, counts)
    assert [len(a) for a in answers] == counts
    sampled = []
    metrics = measure_strategy(policy, theory, samples=8, positions=0, on_answers=sampled.append).metrics
    assert sum(sampled) == theory.probe_answers(8, 0)
    assert metrics["match/probed_nodes"] == len(probes) // 12 and 0.0 < metrics["match/covered"] <= 1.0
    assert 0.0 <= metrics["match/nash_conv_lo"] <= metrics["match/nash_conv_hi"]
    gains = metrics["match/best_response_gain/player_0"] + metrics["match/best_response_gain/player_1"]
    assert gains == pytest.approx(metrics["match/nash_conv"])
    assert metrics["match/invalid_rate_lo"] <= metrics["match/invalid_rate"] <= metrics["match/invalid_rate_hi"]


def test_tictactoe_strategy_metrics_of_a_real_model(quick_model):
    theory = TicTacToeTheory("TicTacToe-v0")
    metrics = measure_strategy(model_policy(quick_model), theory, samples=1, positions=30).metrics
    assert theory.samples_per_probe(1) == 1 and theory.probe_answers(64, 30) == 30 * 8
    assert 0.0 <= metrics["strategy/optimal_move_rate_lo"] <= metrics["strategy/optimal_move_rate_hi"] <= 1.0
    assert 0.0 < metrics["strategy/optimal_move_rate_random"] < 1.0
    assert metrics["strategy/optimal_move_rate"] <= 1.0 - metrics["strategy/invalid_rate"] + 1e-12


def test_evaluation_reports_intervals_strategy_and_the_exploiter_where_it_exists(quick_model):
    policy = model_policy(quick_model)
    collector = Collector(4, {"KuhnPoker-v1": ONE_ROUND_CHIPS})
    metrics = evaluate(
        policy, ["KuhnPoker-v1", "TicTacToe-v0"], ["random", "exploiter"], 4, 1.0, collector, probe_samples=8
    )
    for opponent in ("random", "exploiter"):
        prefix = f"eval/KuhnPoker-v1/{opponent}/"
        assert metrics[prefix + "win_rate_lo"] <= metrics[prefix + "win_rate"] <= metrics[prefix + "win_rate_hi"]
        assert metrics[prefix + "games"] == 4
        assert prefix + "chips_per_round" in metrics and prefix + "mean_return" in metrics
    assert "eval/KuhnPoker-v1/strategy/nash_conv" in metrics
    assert "eval/TicTacToe-v0/strategy/optimal_move_rate" in metrics
    assert not any(k.startswith("eval/TicTacToe-v0/exploiter/") for k in metrics)  # no exact best response there


def test_evaluation_shows_progress_with_an_estimate(quick_model, capsys):
    """Probes count answers and games count games, each bar with its elapsed time and what is left."""
    collector = Collector(4, {"KuhnPoker-v1": ONE_ROUND_CHIPS})
    evaluate(model_policy(quick_model), ["KuhnPoker-v1"], ["random"], 4, 1.0, collector, probe_samples=2, progress=True)
    bars = [line for line in capsys.readouterr().err.split("\r") if line.startswith("eval: ")]
    assert any(line.startswith("eval: strategy probes") and "/24 [" in line and "answer/s" in line for line in bars)
    assert any(line.startswith("eval: games") and "/4 [" in line and "game/s" in line for line in bars)
    assert all("<" in line for line in bars)  # tqdm's [elapsed<remaining]
