"""CoinGuess-v0: a third-party game for spiral_envs, in one file (a template for writing your own).

The game is "spoof", the pub game of hidden coins. Each round both players are dealt 0-3 coins at random,
hidden from the other. Then each guesses the total number of coins in both hands (0-6), one after the other;
the second guesser sees the first guess and may not repeat it. The exact guess wins the round; if neither is
exact, the closer guess wins; at equal distance nobody does. Player 0 guesses first in rounds 1, 3, ... and
player 1 in rounds 2, 4, ..., so with the default two rounds each player has the informational edge once.
The player who wins more rounds wins the game.

It has the three ingredients that make a game worth self-play: hidden information (your own coins), chance
(the deal, drawn from the env's seeded stream so one seed fixes a game) and a real decision (the first guess
leaks information about your hand; the second guesser can take the larger side of the first guess).

The layout is the one every built-in game uses (see `spiral_envs/games/tictactoe.py`): rules as a
`GameState`, the prose as a `TextGame`, and an optional strong scripted agent and theory (the strategy metrics
evaluation logs, `spiral_envs.theory`), named on the game class.
`pyproject.toml` beside this file declares the entry point, so after `pip install ./examples/coin_guess`
`spiral_envs.make("CoinGuess-v0")` finds it without any change to spiral_envs.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from spiral_envs import TERMINAL, GameState, InvalidMove, TextGame, boxed
from spiral_envs.stats import invalid_and_entropy
from spiral_envs.theory import Answer, GameTheory, Measurement, Probe

MAX_COINS = 3
TOTALS = range(2 * MAX_COINS + 1)


def round_winner(guesses: dict[int, int], total: int) -> int | None:
    """The player whose guess is exact, else closer, else None (equal distance). Guesses are distinct."""
    distance = {player: abs(guess - total) for player, guess in guesses.items()}
    if distance[0] == distance[1]:
        return None
    return 0 if distance[0] < distance[1] else 1


class CoinGuessState(GameState[int]):
    """Coins in each hand, the guesses of the current round, and the settled rounds; actions are totals 0-6."""

    def __init__(self, rng: random.Random, num_rounds: int) -> None:
        self.rng = rng
        self.num_rounds = num_rounds
        self.round = 0
        self.points = [0, 0]
        self.history: list[dict[str, Any]] = []
        """Settled rounds, fully revealed: coins, guesses (by player) and the round's winner."""
        self._deal()

    def _deal(self) -> None:
        """Chance event: fresh hands from the env's seeded stream, and the round's first guesser to move."""
        self.coins = (self.rng.randint(0, MAX_COINS), self.rng.randint(0, MAX_COINS))
        self.guesses: dict[int, int] = {}
        self._player = self.first_guesser()

    def first_guesser(self) -> int:
        return self.round % 2

    def current_player(self) -> int:
        return self._player

    def legal_actions(self) -> list[int]:
        if self._player == TERMINAL:
            return []
        return [total for total in TOTALS if total not in self.guesses.values()]

    def apply_action(self, action: int) -> None:
        if self._player == TERMINAL:
            raise InvalidMove("the game is over")
        if action not in TOTALS:
            raise InvalidMove(f"{action} is not a possible total; guess between 0 and {TOTALS[-1]}")
        if action in self.guesses.values():
            raise InvalidMove(f"your opponent already guessed {action}; guess a different total")
        player = self._player
        self.guesses[player] = action
        if len(self.guesses) == 1:
            self._player = 1 - player
            return
        total = sum(self.coins)
        winner = round_winner(self.guesses, total)
        if winner is not None:
            self.points[winner] += 1
        self.history.append({"coins": self.coins, "guesses": dict(self.guesses), "total": total, "winner": winner})
        self.round += 1
        if self.round == self.num_rounds:
            self._player = TERMINAL
        else:
            self._deal()

    def returns(self) -> tuple[float, float]:
        if self.points[0] == self.points[1]:
            return (0.0, 0.0)
        return (1.0, -1.0) if self.points[0] > self.points[1] else (-1.0, 1.0)

    def player_view(self, player: int) -> dict[str, Any]:
        """Own coins, the guesses made so far this round and the revealed past rounds; never the other hand."""
        return {
            "player": player,
            "round": self.round,
            "num_rounds": self.num_rounds,
            "coins": self.coins[player],
            "first_guesser": self.first_guesser(),
            "guesses": dict(self.guesses),
            "points": tuple(self.points),
            "history": [dict(r) for r in self.history],
        }

    def score(self) -> dict[str, Any]:
        return {"points": tuple(self.points)} if self.is_terminal() else {}


class CoinGuess(TextGame[int]):
    """`CoinGuess-v0`: `num_rounds` (default 2, even keeps it fair); `spiral_envs.make` adds the options of
    `TextGameEnv`."""

    default_history = "full"

    def __init__(self, num_rounds: int = 2) -> None:
        if isinstance(num_rounds, bool) or not isinstance(num_rounds, int) or num_rounds < 1:
            raise ValueError(f"num_rounds must be an int >= 1, got {num_rounds!r}")
        self.num_rounds = num_rounds

    def new_state(self, rng: random.Random) -> CoinGuessState:
        return CoinGuessState(rng, self.num_rounds)

    def rules(self, player: int) -> str:
        return (
            f"You are Player {player} in Coin Guess, a game of {self.num_rounds} round(s) against Player "
            f"{1 - player}.\n"
            f"Each round both players are dealt between 0 and {MAX_COINS} coins, hidden from each other. Then "
            f"each guesses the total number of coins in both hands (0 to {TOTALS[-1]}), one after the other: "
            "Player 0 guesses first in odd rounds, Player 1 in even rounds. The second guesser sees the first "
            "guess and may not repeat it. The exact guess wins the round; if neither is exact, the closer guess "
            "wins; at equal distance nobody wins the round. Whoever wins more rounds wins the game.\n"
            "Write your guess as the total in square brackets, e.g. [3]."
        )

    def describe(self, state: CoinGuessState, player: int, full_history: bool) -> str:
        opponent = 1 - player
        lines = []
        if full_history:
            for number, past in enumerate(state.history, start=1):
                coins, guesses, winner = past["coins"], past["guesses"], past["winner"]
                result = "nobody won it" if winner is None else ("you won it" if winner == player else "you lost it")
                lines.append(
                    f"Round {number}: you held {coins[player]} and guessed {guesses[player]}; your opponent held "
                    f"{coins[opponent]} and guessed {guesses[opponent]}. Total {past['total']}: {result}."
                )
        points = state.points
        lines.append(f"Rounds won: you {points[player]}, your opponent {points[opponent]}.")
        if not state.is_terminal():
            lines.append(f"Round {state.round + 1} of {state.num_rounds}. You hold {state.coins[player]} coin(s).")
            if opponent in state.guesses:
                lines.append(f"Your opponent guessed a total of {state.guesses[opponent]}.")
            elif player in state.guesses:
                lines.append(f"You guessed a total of {state.guesses[player]}.")
        return "\n".join(lines)

    def format_action(self, action: int) -> str:
        return f"[{action}]"

    def outcome_text(self, state: CoinGuessState) -> str:
        p0, p1 = state.points
        if p0 == p1:
            return f"both players won {p0} round(s): a draw"
        winner = 0 if p0 > p1 else 1
        return f"player_{winner} won {max(p0, p1)} round(s) to {min(p0, p1)}"

    def render(self, state: CoinGuessState) -> str:
        """Both hands and all guesses: the god's-eye view, for logs and `render_mode="ansi"`."""
        lines = [
            f"round {r + 1}: coins {h['coins']}, guesses {h['guesses']}, total {h['total']}, winner {h['winner']}"
            for r, h in enumerate(state.history)
        ]
        if not state.is_terminal():
            lines.append(f"round {state.round + 1}: coins {state.coins}, guesses {state.guesses}")
        lines.append(f"rounds won: {tuple(state.points)}")
        return "\n".join(lines)


def _round_value(mine: int, theirs: int, total: int) -> int:
    """+1 if my guess wins the round, -1 if theirs does, 0 if neither."""
    winner = round_winner({0: mine, 1: theirs}, total)
    return 0 if winner is None else (1 if winner == 0 else -1)


def best_second_guesses(coins: int, first_guess: int) -> list[int]:
    """Replies to `first_guess` that win most often if the opponent's hand is uniform on 0-3.

    The first guess is treated as carrying no information about the opponent's hand: that is safe against any
    opponent, and it already captures the second guesser's edge of taking the larger side of the first guess.
    """
    value = {
        guess: sum(_round_value(guess, first_guess, coins + other) for other in range(MAX_COINS + 1))
        for guess in TOTALS
        if guess != first_guess
    }
    best = max(value.values())
    return [guess for guess, v in value.items() if v == best]


def best_first_guesses(coins: int) -> list[int]:
    """Opening guesses that do best against an opponent who replies with `best_second_guesses`.

    The opponent's hand is uniform on 0-3, and it may pick any of its equally good replies.
    """
    value: dict[int, float] = {}
    for guess in TOTALS:
        total_value = 0.0
        for other in range(MAX_COINS + 1):
            replies = best_second_guesses(other, guess)
            total_value += sum(_round_value(guess, reply, coins + other) for reply in replies) / len(replies)
        value[guess] = total_value
    best = max(value.values())
    return [guess for guess, v in value.items() if v == best]


class CoinGuessAgent:
    """A scripted expert: best first guess against a best-responding opponent, best reply as second guesser.

    Ties are broken by its own seeded stream, so a seeded agent plays a seeded game the same way every time.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)

    def __call__(self, observation: str, info: dict[str, Any]) -> str:
        view = info["view"]
        player, coins, guesses = view["player"], view["coins"], view["guesses"]
        opponent_guess = guesses.get(1 - player)
        choices = best_first_guesses(coins) if opponent_guess is None else best_second_guesses(coins, opponent_guess)
        return f"\\boxed{{[{self.rng.choice(choices)}]}}"


FIRST_GUESSES = (1, 3, 5)
"""The opening guesses the theory probes the reply to."""


class CoinGuessTheory(GameTheory):
    """The second guesser's reply: at each of its 12 probes (own coins 0-3, facing a first guess of 1, 3 or 5, in
    round 1), the share of answers that pick one of `best_second_guesses`, as `strategy/best_guess_rate` with
    its Wilson interval, and `strategy/invalid_rate` and `strategy/entropy`."""

    def probe_count(self, positions: int) -> int:
        return (MAX_COINS + 1) * len(FIRST_GUESSES)

    def build_probes(self, positions: int) -> list[Probe]:
        """Each point reached in the real env: the first seed that deals the coins to player 1, then the guess."""
        env = self.env
        probes = []
        for coins in range(MAX_COINS + 1):
            for first in FIRST_GUESSES:
                seed = next(s for s in range(10_000) if self._deal(s) == coins)
                env.reset(seed=seed)
                env.step(boxed(f"[{first}]"))
                best = frozenset(f"[{guess}]" for guess in best_second_guesses(coins, first))
                probes.append(self.probe_here((coins, first), best))
        return probes

    def _deal(self, seed: int) -> int:
        self.env.reset(seed=seed)
        return self.env.state.coins[1]

    def measure(self, probes: Sequence[Probe], answers: Sequence[Sequence[Answer]], seed: int = 0) -> Measurement:
        counts, invalid = zip(*(self.tally(p, a) for p, a in zip(probes, answers)))
        total = sum(len(a) for a in answers)
        return Measurement(
            {
                **self.optimal_rate("strategy/best_guess_rate", probes, counts, total),
                **invalid_and_entropy(counts, sum(invalid), total),
            }
        )


# What a game installed by an entry point names on the class the entry point names: its expert, the agent
# `make_agent("strong", "CoinGuess-v0")` builds, and its theory, which evaluation measures strategy with.
CoinGuess.strong_agent = CoinGuessAgent
CoinGuess.theory = CoinGuessTheory
