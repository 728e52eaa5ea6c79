"""KuhnPokerTheory over the whole match: probes at every node the equilibrium reaches, read as a state-dependent
policy whose exact NashConv is reported beside the first hand's, and an exploiter that answers it.

Synthetic answers stand in for a model: at each probe, boxed moves in the proportions a known policy plays
there, so the exact figures of that policy are known (the model-driven path is in tests/train/eval/).
"""

from __future__ import annotations

import pytest

import spiral_envs
from spiral_envs.games import kuhn_theory
from spiral_envs.games.kuhn_poker import RANK, chips_text
from spiral_envs.games.kuhn_strategy import FIRST_HAND, KuhnPokerTheory, chip_path
from spiral_envs.theory import Answer

ALWAYS_BET = kuhn_theory.deterministic_round_policy(lambda card, line: "call" if line and line[-1] == "bet" else "bet")


def theory(min_node_reach: float = 0.01, bootstrap: int = 20, **env_kwargs) -> KuhnPokerTheory:
    built = KuhnPokerTheory("KuhnPoker-v1", env_kwargs)
    built.min_node_reach = min_node_reach
    built.bootstrap = bootstrap
    return built


def answers_of(probes, play, n: int = 200, invalid: int = 0) -> list[list[Answer]]:
    """At each probe, `n` answers in the proportions `play(node, state)` gives (rounded), and `invalid` junk."""
    out = []
    for probe in probes:
        probabilities = play(probe.key.node, probe.key.state)
        answers = [Answer(f"\\boxed{{[{a}]}}") for a, p in probabilities.items() for _ in range(round(float(p) * n))]
        out.append(answers + [Answer("I fold? no: I raise")] * invalid)
    return out


def equilibrium(num_rounds: int, scoring: str = "match"):
    table = kuhn_theory.solve_match(num_rounds, scoring).policy.table
    return lambda node, state: table[node][state]


def test_probes_are_the_twelve_states_at_each_node_the_equilibrium_reaches():
    measured = theory()
    probes = measured.probes()
    solution = kuhn_theory.solve_match(5, "match")
    reach = kuhn_theory.node_reach(solution.policy, solution.policy, 5)
    nodes = [node for node, p in sorted(reach.items()) if p >= 0.01]
    assert nodes[0] == FIRST_HAND and len(nodes) == len(measured.node_reach) == 38  # of 45 (round, chips)
    assert [p.key.node for p in probes] == [node for node in nodes for _ in kuhn_theory.INFO_STATES]
    assert {p.key.state for p in probes} == set(kuhn_theory.INFO_STATES)
    assert len({p.key for p in probes}) == len(probes) == measured.probe_count(0) == 12 * 38


@pytest.mark.parametrize("history", ["full", "current"])
def test_each_probe_is_the_keyed_position_as_the_env_shows_it(history):
    """The round, both players' chips, the card, the line and the player to act are the key's, in the state and
    in the prompt."""
    for probe in theory(history=history).probes():
        round_number, chips_0, card, line = probe.key
        mover = kuhn_theory.mover(round_number, line)
        state = probe.state
        found = (state.round, state.chips, state.cards[mover], state.betting, state.current_player())
        assert found == (round_number, [chips_0, -chips_0], card, line, mover)
        now = probe.observation.rsplit(f"Round {round_number} of 5. You are Player {mover}.\n", 1)[1]
        pot = 2 + line.count("bet")  # no call yet: a call ends the round
        assert now.startswith(f"Your card: {card}. Pot: {pot} chips. Chips: {chips_text(chips_0, -chips_0)}.\n")
        assert probe.legal == tuple(f"[{a}]" for a in kuhn_theory.legal_actions(line))
        assert ("Previous rounds:" in probe.observation) == (history == "full" and round_number > 1)


def test_chip_paths_move_one_chip_either_way_or_two_to_the_higher_card():
    deals = [("K", "J"), ("J", "Q"), ("Q", "K")]  # player_0 holds the higher card in round 1 only
    assert chip_path(deals, 5) is None and chip_path(deals, -6) is None  # +2 once at most, -2 twice at most
    for target in range(-5, 5):
        path = chip_path(deals, target)
        assert path is not None and sum(path) == target, target
        for gain, (card_0, card_1) in zip(path, deals):
            assert gain in (1, -1) or gain == (2 if RANK[card_0] > RANK[card_1] else -2)


def test_later_nodes_get_answers_in_proportion_to_their_reach_and_the_cost_is_exact():
    measured = theory()
    probes = measured.probes()
    per_probe = [measured.samples_at(p, 64) for p in probes]
    assert per_probe[:12] == [64] * 12  # the first hand: every answer asked for
    assert all(2 <= n <= 27 for n in per_probe[12:])  # a round-2 node is reached at most 41% of the time
    assert measured.probe_answers(64, 0) == sum(per_probe) == 4044
    assert measured.probe_answers(1, 0) == sum(measured.samples_at(p, 1) for p in probes) == 12 * 38
    one_round = theory(num_rounds=1, scoring="chips")
    assert one_round.probe_answers(64, 0) == 12 * 64 and len(one_round.probes()) == 12


def test_the_match_equilibrium_read_at_every_probe_is_unexploitable_where_its_first_hand_is_not():
    """The equilibrium's answers everywhere: the whole-match figure is about 0 (counts rounded to 1/200), while
    its first-round strategy played every round, the first-hand figure, is exploited by 0.262 (docs/learning.md).
    Six rarely reached nodes are not probed: covered is just under 1."""
    measured = theory()
    probes = measured.probes()
    metrics = measured.measure(probes, answers_of(probes, equilibrium(5))).metrics
    assert metrics["match/nash_conv"] == pytest.approx(0.0, abs=0.005)
    assert metrics["strategy/nash_conv"] == pytest.approx(0.262, abs=0.005)
    assert metrics["match/probed_nodes"] == 38
    assert 0.98 < metrics["match/covered"] < 1.0
    for name in ("nash_conv", "invalid_rate"):
        assert metrics[f"match/{name}_lo"] <= metrics[f"match/{name}_hi"]
    gains = metrics["match/best_response_gain/player_0"] + metrics["match/best_response_gain/player_1"]
    assert gains == pytest.approx(metrics["match/nash_conv"], abs=1e-12)


def test_probing_every_reachable_node_covers_every_decision():
    """min_node_reach 0: every node some game reaches (not only the equilibrium's) is probed, so nothing falls
    back on the first hand and the equilibrium's answers are exactly as good as the equilibrium."""
    measured = theory(min_node_reach=0.0, num_rounds=3)
    probes = measured.probes()
    metrics = measured.measure(probes, answers_of(probes, equilibrium(3))).metrics
    assert metrics["match/probed_nodes"] == 1 + 4 + 9  # every (round, chips) but round 2 on equal chips
    assert metrics["match/covered"] == 1.0
    assert metrics["match/nash_conv"] == pytest.approx(0.0, abs=0.005)
    assert metrics["strategy/nash_conv"] > 0.15


def test_a_policy_that_changes_only_in_a_later_round_is_seen_by_the_match_figure_alone():
    """Always bet and call in round 3 on equal chips, the equilibrium everywhere else: the first hand's figures
    do not move; the whole match's do."""
    measured = theory()
    probes = measured.probes()
    eq = equilibrium(5)
    deviating = measured.measure(
        probes, answers_of(probes, lambda node, state: ALWAYS_BET[state] if node == (3, 0) else eq(node, state))
    ).metrics
    faithful = measured.measure(probes, answers_of(probes, eq)).metrics
    assert {k: v for k, v in deviating.items() if not k.startswith("match/")} == {
        k: v for k, v in faithful.items() if not k.startswith("match/")
    }
    assert deviating["match/nash_conv"] > faithful["match/nash_conv"] + 0.04
    assert deviating["match/nash_conv_lo"] > faithful["match/nash_conv_hi"]


@pytest.mark.parametrize("scoring", ["match", "chips"])
def test_one_round_whole_match_figures_are_the_first_hand_ones(scoring):
    measured = theory(num_rounds=1, scoring=scoring)
    probes = measured.probes()
    timid = kuhn_theory.deterministic_round_policy(lambda card, line: "fold" if line and line[-1] == "bet" else "check")
    metrics = measured.measure(probes, answers_of(probes, lambda node, state: timid[state], 30, 3)).metrics
    for name in ("nash_conv", "nash_conv_lo", "nash_conv_hi", "best_response_gain/player_0", "invalid_rate_hi"):
        assert metrics[f"match/{name}"] == metrics[f"strategy/{name}"], name
    assert metrics["match/nash_conv"] > 0.1 and metrics["match/invalid_rate"] == pytest.approx(3 / 33)
    assert metrics["match/covered"] == 1.0 and metrics["match/probed_nodes"] == 1


def test_chip_scoring_probes_the_nodes_its_own_equilibrium_reaches():
    measured = theory(scoring="chips")
    solution = kuhn_theory.solve_match(5, "chips")
    reach = kuhn_theory.node_reach(solution.policy, solution.policy, 5)
    assert measured.node_reach == {node: p for node, p in sorted(reach.items()) if p >= 0.01}
    assert measured.node_reach != theory().node_reach
    assert {p.key.node for p in measured.probes()} == set(measured.node_reach)


def test_the_exploiter_answers_the_whole_match_policy_and_beats_it_in_play():
    """The first hand plays the equilibrium, every later node always bets and calls: a best response to the first
    hand alone gains 0.13 a seat; the exploiter, the exact best response to the whole-match policy, gains its
    `match/best_response_gain` (0.33, 0.36), and 400 real games a seat land well above 0."""
    measured = theory()
    probes = measured.probes()
    eq = equilibrium(5)
    answers = answers_of(probes, lambda node, state: eq(node, state) if node == FIRST_HAND else ALWAYS_BET[state])
    found = measured.measure(probes, answers)
    whole = measured.match_policy(probes, [measured.tally(p, a)[0] for p, a in zip(probes, answers)])[1]
    env = spiral_envs.make("KuhnPoker-v1")
    for seat, role in enumerate(env.possible_agents):
        exploiter = found.exploiter(7, role)
        sign = 1 if seat == 0 else -1
        players = (exploiter.match_policy, whole) if seat == 0 else (whole, exploiter.match_policy)
        gain = found.metrics[f"match/best_response_gain/{role}"]
        assert sign * kuhn_theory.profile_value(*players, 5) == pytest.approx(gain, abs=1e-12)
        assert gain > found.metrics[f"strategy/best_response_gain/{role}"] + 0.15
        victim = spiral_envs.games.kuhn_poker.KuhnPokerPolicyAgent(whole, seed=seat)
        total = 0.0
        for seed in range(400):
            env.reset(seed=seed)
            while not env.terminations[env.agent_selection]:
                agent = exploiter if env.agent_selection == role else victim
                env.step(agent(str(env.observe(env.agent_selection)), env.infos[env.agent_selection]))
            total += env.rewards[role]
        assert total / 400 > 0.15, (role, total / 400)
