"""Kuhn Poker's registered theory: the model's policy over the whole match, its NashConv in the env's scoring,
and the first hand's alone beside it; an exploiter that plays the best response to the whole-match policy.

A match of several rounds is linked by the chips, and the prompt shows the round and both players' chips, so a
model may play differently in each round and chip difference. The probes are the 12 information states
(`kuhn_theory.INFO_STATES`) at each probed node `(round, chips of player_0)`: the nodes the exact match
equilibrium (`kuhn_theory.solve_match`) reaches with probability at least `min_node_reach` when it plays
itself, a fixed set (round 1 always; `kuhn_theory.node_reach`). Each probe is reached by playing the real env
from a seed, earlier rounds played to land on the node's chips. The answers there (invalid ones left out, the
rest renormalised) give the model's policy at each state of each probed node; a node not probed falls back to
the first hand's policy. Under `history="full"` a probe's prompt also shows the earlier rounds of the one game
that reached it.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Sequence
from typing import NamedTuple

from spiral_envs.agents import boxed
from spiral_envs.core import PLAYER_NAMES, normalize_move
from spiral_envs.games import kuhn_theory
from spiral_envs.games.kuhn_poker import RANK, KuhnPokerPolicyAgent, MatchPolicy
from spiral_envs.stats import invalid_and_entropy, quantile, rate, resample
from spiral_envs.theory import Answer, GameTheory, Measurement, Probe

KUHN_STATE_NAMES = {(): "first", ("check",): "after_check", ("bet",): "facing_bet", ("check", "bet"): "check_bet"}
"""Short names of the four betting lines for metric keys: e.g. `policy/J/facing_bet/call`."""
MAX_SEEDS = 10_000
FIRST_HAND = (1, 0)
"""The node of the first hand: round 1, no chips won yet."""

Node = tuple[int, int]
"""(round, chips of player_0 before it)."""


class KuhnProbeKey(NamedTuple):
    """A probe's place: the node (round, chips of player_0 before the round) and the information state there."""

    round: int
    chips_0: int
    card: str
    betting: tuple[str, ...]

    @property
    def node(self) -> Node:
        return (self.round, self.chips_0)

    @property
    def state(self) -> kuhn_theory.InfoState:
        return (self.card, self.betting)


def aggressive_action(line: tuple[str, ...]) -> str:
    """The move a policy row is reported by (`policy/<card>/<line>/<move>`): call facing a bet, else bet."""
    return "call" if line and line[-1] == "bet" else "bet"


def round_policy(probes: Sequence[Probe], counts: Sequence[dict[str, int]]) -> dict[tuple, dict[str, float]]:
    """(card, betting) -> action -> probability, from move counts at the probes of one node; uniform where all
    were invalid."""
    policy = {}
    for probe, c in zip(probes, counts):
        total = sum(c.values())
        actions = {normalize_move(text): n for text, n in c.items()}
        policy[probe.key.state] = {a: (n / total if total else 1 / len(actions)) for a, n in actions.items()}
    return policy


def round_moves(starter_gain: int) -> tuple[str, ...]:
    """A round's moves that give its starter `starter_gain` chips: a fold moves 1 chip either way whatever the
    cards; a called bet moves 2 to the higher card, so +-2 is only right with the cards that make it so."""
    return {1: ("bet", "fold"), -1: ("check", "bet", "fold"), 2: ("bet", "call"), -2: ("bet", "call")}[starter_gain]


def chip_path(deals: Sequence[tuple[str, str]], target: int) -> list[int] | None:
    """player_0's chip gain in each round of `deals` (player_0's card, player_1's) summing to `target`: +-1 in
    any round, or 2 to the holder of the higher card; None if no path exists. The first such path in the order
    +1, -1, +-2 per round."""

    @functools.cache
    def search(k: int, remaining: int) -> tuple[int, ...] | None:
        if k == len(deals):
            return () if remaining == 0 else None
        if abs(remaining) > 2 * (len(deals) - k):
            return None
        card_0, card_1 = deals[k]
        for gain in (1, -1, 2 if RANK[card_0] > RANK[card_1] else -2):
            rest = search(k + 1, remaining - gain)
            if rest is not None:
                return (gain, *rest)
        return None

    path = search(0, target)
    return None if path is None else list(path)


class KuhnPokerTheory(GameTheory):
    """Metrics (keys relative to `eval/<env>/`):

    The first hand, taken as the policy of every round (as before the match was probed):
    `strategy/nash_conv` (with `_lo`/`_hi`, a `bootstrap`-draw 95% interval), `strategy/best_response_gain/<seat>`,
    `strategy/invalid_rate` (with its Wilson interval) and `strategy/entropy` over the first-hand probes, and
    `policy/<card>/<line>/<move>` for each first-hand state.

    The whole match, the policy measured at every probed node (a node not probed plays the first hand's):
    `match/nash_conv` (with `_lo`/`_hi`, bootstrap draws resampling the answers at every probe),
    `match/best_response_gain/<seat>`, `match/covered` (the share of the decisions of that policy's own
    self-play, exactly, that are taken at a probed node: 1 - covered is what the first-hand fallback stands
    for), `match/probed_nodes`, and `match/invalid_rate` (with its Wilson interval) over all probes' answers.

    The exploiter plays the exact best response to the whole-match policy, for its seat.
    """

    has_exploiter = True
    bootstrap: int = 200
    """Bootstrap draws of the NashConv intervals."""
    min_node_reach: float = 0.01
    """A node is probed when the match equilibrium, playing itself, plays a round there at least this often (0:
    every node that some game reaches)."""
    min_samples: int = 2
    """The fewest answers at a probe of a later node (never more than evaluation's `samples`)."""

    @functools.cached_property
    def node_reach(self) -> dict[Node, float]:
        """Each probed node, in order, with the probability that the match equilibrium's self-play plays a round
        there (the first hand's is 1: it is always probed)."""
        game = self.env.game
        equilibrium = kuhn_theory.solve_match(game.num_rounds, game.scoring).policy
        reach = kuhn_theory.node_reach(equilibrium, equilibrium, game.num_rounds)
        uniform = kuhn_theory.round_policy_as_match_policy(kuhn_theory.uniform_round_policy())
        possible = kuhn_theory.node_reach(uniform, uniform, game.num_rounds)  # > 0 where some game arrives
        return {node: p for node, p in sorted(reach.items()) if possible[node] > 0 and p >= self.min_node_reach}

    def node_samples(self, node: Node, samples: int) -> int:
        """Answers at each probe of `node`: `samples` in proportion to how often the equilibrium plays there
        (rounded up; `samples` on the first hand), at least `min_samples`."""
        return max(min(self.min_samples, samples), math.ceil(samples * self.node_reach[node] - 1e-9))

    def samples_at(self, probe: Probe, samples: int) -> int:
        return self.node_samples(probe.key.node, samples)

    def probe_count(self, positions: int) -> int:
        return len(kuhn_theory.INFO_STATES) * len(self.node_reach)

    def probe_answers(self, samples: int, positions: int) -> int:
        return len(kuhn_theory.INFO_STATES) * sum(self.node_samples(node, samples) for node in self.node_reach)

    def build_probes(self, positions: int) -> list[Probe]:
        """The 12 states at each probed node, node by node (the first hand's first, in `INFO_STATES` order).

        Each is reached by playing the real env from the first seed whose deals allow it: the earlier rounds are
        played to land on the node's chips (`chip_path`, `round_moves`), then the betting line, with the card
        dealt to the player to act.
        """
        deals_of: dict[int, list[tuple[str, str]]] = {}
        probes = []
        for node in self.node_reach:
            for card, line in kuhn_theory.INFO_STATES:
                key = KuhnProbeKey(*node, card, line)
                self._play_to(key, deals_of)
                probes.append(self.probe_here(key))
        return probes

    def _play_to(self, key: KuhnProbeKey, deals_of: dict[int, list[tuple[str, str]]]) -> None:
        """Leave `env` at `key`'s decision point, from the first seed that allows it."""
        env = self.env
        round_number, chips_0, card, line = key
        mover = kuhn_theory.mover(round_number, line)
        for seed in range(MAX_SEEDS):
            if seed not in deals_of:
                deals_of[seed] = self._deals(seed)
            deals = deals_of[seed]
            path = chip_path(deals[: round_number - 1], chips_0)
            if deals[round_number - 1][mover] == card and path is not None:
                break
        else:  # pragma: no cover - every reachable node is reached within a few dozen seeds
            raise RuntimeError(f"no seed within {MAX_SEEDS} reaches {key} in {self.env_id}")
        env.reset(seed=seed)
        for k, gain in enumerate(path, start=1):
            for move in round_moves(gain if (k - 1) % 2 == 0 else -gain):  # player_0 starts the odd rounds
                env.step(boxed(f"[{move}]"))
        for move in line:
            env.step(boxed(f"[{move}]"))
        view = env.infos[env.agent_selection]["view"]
        found = (view["round"], view["chips"], view["card"], tuple(view["betting"]), view["player"])
        wanted = (round_number, (chips_0, -chips_0), card, line, mover)
        if found != wanted:
            raise RuntimeError(
                f"probe {key} of {self.env_id}: seed {seed} reached (round, chips, card, betting, player) {found}, "
                f"not {wanted}; the env's deals or chip rules differ from kuhn_strategy's"
            )

    def _deals(self, seed: int) -> list[tuple[str, str]]:
        """The cards (player_0's, player_1's) of every round of `seed`'s game, read from the env (the deals do
        not depend on the moves)."""
        env = self.env
        env.reset(seed=seed)
        deals = []
        for _ in range(env.game.num_rounds):
            deals.append(tuple(env.state.cards))
            for move in ("check", "check"):
                env.step(boxed(f"[{move}]"))
        return deals

    def match_policy(
        self, probes: Sequence[Probe], counts: Sequence[dict[str, int]]
    ) -> tuple[dict[kuhn_theory.InfoState, dict[str, float]], kuhn_theory.TablePolicy]:
        """The first hand's round policy, and the whole-match policy: each probed node's measured round policy,
        the first hand's at every other (round, chips)."""
        at: dict[Node, tuple[list[Probe], list[dict[str, int]]]] = {}
        for probe, c in zip(probes, counts):
            node_probes, node_counts = at.setdefault(probe.key.node, ([], []))
            node_probes.append(probe)
            node_counts.append(c)
        first = round_policy(*at[FIRST_HAND])
        measured = {node: round_policy(*found) for node, found in at.items()}
        table = {
            (r, chips): measured.get((r, chips), first)
            for r in range(1, self.env.game.num_rounds + 1)
            for chips in kuhn_theory.chip_range(r)
        }
        return first, kuhn_theory.TablePolicy(table)

    def measure(self, probes: Sequence[Probe], answers: Sequence[Sequence[Answer]], seed: int = 0) -> Measurement:
        as_match = kuhn_theory.round_policy_as_match_policy
        num_rounds, scoring = self.env.game.num_rounds, self.env.game.scoring
        counts, invalid = zip(*(self.tally(p, a) for p, a in zip(probes, answers)))
        first = [i for i, p in enumerate(probes) if p.key.node == FIRST_HAND]
        later = [i for i, p in enumerate(probes) if p.key.node != FIRST_HAND]
        first_probes, first_counts = [probes[i] for i in first], [counts[i] for i in first]
        later_probes, later_counts = [probes[i] for i in later], [counts[i] for i in later]

        # the first hand taken as every round's policy
        measured, whole = self.match_policy(probes, counts)
        rng = random.Random(seed)
        first_draws = [resample(first_counts, rng) for _ in range(self.bootstrap)]
        draws = sorted(
            kuhn_theory.nash_conv(as_match(round_policy(first_probes, draw)), num_rounds, scoring)
            for draw in first_draws
        )
        metrics: dict[str, float] = {
            "strategy/nash_conv": kuhn_theory.nash_conv(as_match(measured), num_rounds, scoring),
            "strategy/nash_conv_lo": quantile(draws, 0.025),
            "strategy/nash_conv_hi": quantile(draws, 0.975),
            **invalid_and_entropy(first_counts, sum(invalid[i] for i in first), sum(len(answers[i]) for i in first)),
        }
        for probe in first_probes:
            card, line = probe.key.state
            action = aggressive_action(line)
            metrics[f"policy/{card}/{KUHN_STATE_NAMES[line]}/{action}"] = measured[probe.key.state][action]
        seat_values = [kuhn_theory.best_response(as_match(measured), num_rounds, scoring, seat) for seat in (0, 1)]
        metrics["strategy/best_response_gain/player_0"] = seat_values[0][0]
        metrics["strategy/best_response_gain/player_1"] = seat_values[1][0]

        # the whole match: each draw resamples the first hand as above and every later probe with its own stream
        later_rng = random.Random(f"kuhn-later-nodes/{seed}")
        match_draws = sorted(
            kuhn_theory.nash_conv(
                self.match_policy([*first_probes, *later_probes], [*draw, *resample(later_counts, later_rng)])[1],
                num_rounds,
                scoring,
            )
            for draw in first_draws
        )
        match_values = [kuhn_theory.best_response(whole, num_rounds, scoring, seat) for seat in (0, 1)]
        decisions = kuhn_theory.node_decisions(whole, whole, num_rounds)
        probed = {p.key.node for p in probes}
        metrics.update(
            {
                "match/nash_conv": match_values[0][0] + match_values[1][0],
                "match/nash_conv_lo": quantile(match_draws, 0.025),
                "match/nash_conv_hi": quantile(match_draws, 0.975),
                "match/best_response_gain/player_0": match_values[0][0],
                "match/best_response_gain/player_1": match_values[1][0],
                "match/covered": 1
                - sum(d for node, d in decisions.items() if node not in probed) / sum(decisions.values()),
                "match/probed_nodes": len(probed),
                **rate("match/invalid_rate", sum(invalid), sum(len(a) for a in answers)),
            }
        )
        return Measurement(metrics, functools.partial(exploiter_agent, tuple(br for _, br in match_values)))


def exploiter_agent(policies: tuple[MatchPolicy, MatchPolicy], seed: int, role: str) -> KuhnPokerPolicyAgent:
    """The exploiter seat: `policies[seat]`, the best response for that seat, seeded per game."""
    return KuhnPokerPolicyAgent(policies[PLAYER_NAMES.index(role)], seed=seed)
