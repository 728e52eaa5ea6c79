"""The PettingZoo AEC adapter that turns any `TextGame` into a text environment.

Everything about the protocol lives here, once, for every game: whose turn it is, reading the move out of a
free-text answer, what happens on an invalid answer, zero-sum terminal rewards, seeding, and rendering.
"""

from __future__ import annotations

import functools
import math
import random
import warnings
from typing import Any, ClassVar

import gymnasium
import numpy as np
from pettingzoo import AECEnv

from spiral_envs.core import PLAYER_NAMES, TERMINAL, GameState, InvalidMove, TextGame, player_name
from spiral_envs.parsing import extract_move, read_move
from spiral_envs.spaces import FreeText, Prompt

HISTORY_MODES = ("full", "current")
MAX_OBSERVATION_CHARS = 1_000_000
MAX_ANSWER_CHARS = 10_000_000
_INDEX = {agent: i for i, agent in enumerate(PLAYER_NAMES)}
"""Each agent's player index; shared by every env, never edited."""


class TextGameEnv(AECEnv):
    """A two-player zero-sum text game as a PettingZoo `AECEnv`.

    `observe(agent)` is the full prompt text for that role; `step(answer)` takes the model's raw answer.
    Rewards are 0 until the end, then the game's zero-sum returns (+1/-1/0, or a game's own units such as Kuhn
    Poker's chips scoring), or the invalid-move penalty and its negation.

    `spiral_envs.make` builds one for a game registered as its `TextGame` class, passing these options here
    and the rest to the game's constructor:
        history: "full" shows every past move, "current" only the rules and the position; None takes the
            game's default (the SPIRAL paper's choice for that game).
        invalid_move_penalty: reward of a player whose answer holds no legal move (its opponent gets the
            negation, keeping the game zero-sum, and is the winner). It may not be above the game's
            `TextGame.worst_legal_return` (else an invalid answer would beat a legal loss: a ValueError says so);
            None takes the game's `TextGame.invalid_move_penalty`, by default that worst legal return (Kuhn
            Poker: -1 under match scoring, -2 chips a round under chips).
        error_allowance: invalid answers a player may retry per turn, with the error shown in its next
            observation, before the game ends (TextArena's `error_allowance`).
        render_mode: None or "ansi".
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "name": "text_game_v0", "is_parallelizable": False}
    strong_agent: Any = None
    """A game installed through an entry point may name its strong scripted agent's class here (or on its
    `TextGame` class); a game registered in code passes `register(..., expert=...)` instead."""

    def __init__(
        self,
        game: TextGame,
        *,
        history: str | None = None,
        invalid_move_penalty: float | None = None,
        error_allowance: int = 0,
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        history = game.default_history if history is None else history
        if history not in HISTORY_MODES:
            raise ValueError(f"history={history!r} is not a history mode; use one of {list(HISTORY_MODES)}")
        invalid_move_penalty = _checked_penalty(game, invalid_move_penalty)
        if isinstance(error_allowance, bool) or not isinstance(error_allowance, int) or error_allowance < 0:
            raise ValueError(f"error_allowance must be an int >= 0 (retries per turn), got {error_allowance!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r} is not supported; use None or 'ansi'")
        self.game = game
        self.history = history
        self.invalid_move_penalty = float(invalid_move_penalty)
        self.error_allowance = error_allowance
        self.render_mode = render_mode
        self.possible_agents = list(PLAYER_NAMES)
        self._index = _INDEX
        self._legal_texts: tuple[str, ...] = ()
        """The mover's legal moves as text, formatted once a turn by `_turn_infos`."""
        self._rng: random.Random | _NoChance | None = None if game.chance else _NoChance(type(game).__name__)
        self.state: GameState | None = None
        self.agents = []
        self.agent_selection = None  # no game yet: `step` says to call `reset` first

    @functools.cached_property
    def observation_spaces(self) -> dict[str, gymnasium.spaces.Space]:  # type: ignore[override]
        """Built on first use: an env made for every game never pays for spaces nobody reads."""
        return {a: FreeText(MAX_OBSERVATION_CHARS) for a in self.possible_agents}

    @functools.cached_property
    def action_spaces(self) -> dict[str, gymnasium.spaces.Space]:  # type: ignore[override]
        return {a: FreeText(MAX_ANSWER_CHARS) for a in self.possible_agents}

    def observation_space(self, agent: str) -> gymnasium.spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> gymnasium.spaces.Space:
        return self.action_spaces[agent]

    # -- protocol -------------------------------------------------------------------------------------

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        """Start a new game. A seed (an int >= 0, numpy's too) fixes every chance event; no seed continues the
        previous stream."""
        seed = _checked_seed(seed)
        if self.game.chance and (seed is not None or self._rng is None):
            self._rng = random.Random(seed)
        self.state = self.game.new_state(self._rng)
        self.agents = list(self.possible_agents)
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.transcript: list[dict[str, Any]] = []
        self.outcome: dict[str, Any] | None = None
        self._retries_left = self.error_allowance
        self._last_error: dict[str, str] = {}
        self.agent_selection = self.possible_agents[self.state.current_player()]
        self.infos = self._turn_infos()

    def step(self, action: str | None) -> None:
        """Play the answer of the agent to move; the move is read from it by `spiral_envs.parsing.read_move`."""
        state, agent = self.state, self.agent_selection
        if state is None or not self.agents or self.terminations[agent] or self.truncations[agent]:
            self._step_out_of_play(action)
            return
        if not isinstance(action, str):
            raise TypeError(f"step() takes the answer text (str) of {agent}; got {type(action).__name__}")
        # Rewards are 0 until `_finish`, after which no move is played: there is nothing to clear here.
        try:
            parsed, text = read_move(self.game, state, action)
            state.apply_action(parsed)
        except InvalidMove as err:
            move = extract_move(action)  # the transcript keeps what the answer wrote
            self.transcript.append({"agent": agent, "answer": action, "move": move, "error": str(err)})
            self._on_invalid(agent, self._index[agent], str(err))
            return
        self.transcript.append({"agent": agent, "answer": action, "move": text})
        self._last_error.pop(agent, None)
        self._retries_left = self.error_allowance
        player = state.current_player()
        if player == TERMINAL:
            returns = state.returns()
            if min(returns) < self.invalid_move_penalty:
                _warn_invalid_answer_pays(self.game, returns, self.invalid_move_penalty)
            self._finish(returns, _winner(returns), self.game.outcome_text(state), None)
        else:
            self.agent_selection = self.possible_agents[player]
            self.infos = self._turn_infos()

    def _step_out_of_play(self, action: str | None) -> None:
        """A step with no move due: before `reset` or after every agent left (errors), or a finished game's
        agent leaving with `step(None)`, PettingZoo's dead step."""
        if self.state is None:
            raise RuntimeError("step() before reset(): call env.reset(seed=...) first")
        if not self.agents:
            raise RuntimeError("the game is over and every agent has left; call env.reset() to play again")
        if action is not None:
            raise ValueError(
                f"the game is over; {self.agent_selection} may only step(None) to leave (got {type(action).__name__})"
            )
        self._was_dead_step(action)

    def observe(self, agent: str) -> Prompt:
        """The full prompt text for `agent` (rules, what it may see, history, legal moves)."""
        return Prompt(self._observation_text(agent))

    def render(self) -> str | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() without a render_mode; make the env with render_mode='ansi'")
            return None
        if self.state is None:
            raise RuntimeError("render() before reset(): call env.reset(seed=...) first")
        text = self.game.render(self.state)
        if self.outcome is not None:
            text += f"\nGame over: {self.outcome['reason']}"
        return text

    def close(self) -> None:
        pass

    # -- internals ------------------------------------------------------------------------------------

    def _turn_infos(self) -> dict[str, dict[str, Any]]:
        """Infos while the game runs: the agent to move gets its legal moves and its view of the game.

        Called whenever a turn starts (reset, a move, a retry); it keeps the mover's legal moves as text for
        this turn's prompt."""
        player = self._index[self.agent_selection]
        self._legal_texts = tuple(self.game.format_legal_actions(self.state))
        info = {"legal_actions": list(self._legal_texts), "view": self.state.player_view(player)}
        first, second = self.possible_agents  # both play until the game ends
        if player == 0:
            return {first: info, second: {"legal_actions": []}}
        return {first: {"legal_actions": []}, second: info}

    def _on_invalid(self, agent: str, player: int, reason: str) -> None:
        if self._retries_left > 0:
            self._retries_left -= 1
            self._last_error[agent] = reason
            self.infos = self._turn_infos()
            self.infos[agent].update(invalid_move=True, reason=reason, retries_left=self._retries_left)
            return
        penalty = self.invalid_move_penalty
        other = 0.0 - penalty  # never -0.0: with a penalty of 0 both rewards are 0.0, and nobody won
        returns = (penalty, other) if player == 0 else (other, penalty)
        self._finish(returns, _winner(returns), f"{agent} made an invalid move: {reason}", agent)

    def _finish(self, returns: tuple[float, float], winner: int | None, reason: str, offender: str | None) -> None:
        self.outcome = {
            "winner": None if winner is None else player_name(winner),
            "reason": reason,
            "invalid_move": offender is not None,
            "offender": offender,
            **self.state.score(),
        }
        for agent in self.agents:
            self.rewards[agent] = float(returns[self._index[agent]])
            self.terminations[agent] = True
        self.infos = {a: {"legal_actions": [], **self.outcome} for a in self.agents}
        if offender is not None:
            self.infos[offender]["reason"] = reason
        self._accumulate_rewards()
        self.agent_selection = self.possible_agents[1 - self._index[self.agent_selection]]

    def _observation_text(self, agent: str) -> str:
        player = self._index[agent]
        rules = self.game.rules(player)
        described = self.game.describe(self.state, player, self.history == "full")
        if self.outcome is not None:
            last = f"The game is over: {self.outcome['reason']}"
        elif agent != self.agent_selection:
            last = "Wait for your opponent's move."
        else:
            moves = self.game.legal_moves_text(self.state, self._legal_texts)
            last = f"Your legal moves: {moves}" if moves else ""  # "" for a game whose own text states the moves
            error = self._last_error.get(agent)
            if error is not None:
                retry = f"Your previous answer was invalid ({error}). Tries left after this one: {self._retries_left}."
                last = f"{last}\n{retry}" if last else retry
        return "\n".join(filter(None, (rules, described, last)))


class _NoChance:
    """The `rng` given to the games of a `TextGame` whose `chance` is False: a draw from it is a bug in that
    declaration, reported as one (a shared or unseeded stream would only make seeds silently not replay)."""

    def __init__(self, game: str) -> None:
        self._game = game

    def __getattr__(self, name: str) -> Any:  # only names the object lacks: every one a game could draw with
        if name.startswith("__"):  # copy and pickle probe for hooks; the object has none
            raise AttributeError(name)
        game = self.__dict__.get("_game", "the game")
        raise RuntimeError(f"{game} sets chance = False, but its game used rng.{name}; set chance = True")


def _checked_penalty(game: TextGame, option: Any) -> float:
    """The invalid-move penalty of an env of `game`: the `option`, else the game's own, else its worst legal
    return; a ValueError, naming the game, the penalty, the worst legal result and the fix, if it is above
    the worst legal result (an invalid answer would then beat a legal loss)."""
    name = type(game).__name__
    worst = game.worst_legal_return
    if isinstance(worst, bool) or not isinstance(worst, (int, float)) or not math.isfinite(worst) or worst > 0:
        raise ValueError(f"{name}.worst_legal_return must be a finite number <= 0 (a loss), got {worst!r}")
    penalty = option if option is not None else game.invalid_move_penalty
    if penalty is None:
        return float(worst)
    if isinstance(penalty, bool) or not isinstance(penalty, (int, float)):
        raise TypeError(f"invalid_move_penalty must be a number <= {worst:g}, got {penalty!r}")
    if not math.isfinite(penalty):
        raise ValueError(f"invalid_move_penalty must be a finite number <= {worst:g}, got {penalty!r}")
    if penalty > worst:
        if option is None:
            raise ValueError(
                f"{name}.invalid_move_penalty={penalty:g} is above its worst legal result {worst:g} "
                f"(worst_legal_return), so an invalid answer would score better than a legal loss; set it to "
                f"{worst:g} or lower (or to None: the worst legal result)"
            )
        own = worst if game.invalid_move_penalty is None else game.invalid_move_penalty
        unset = f", or leave it unset for the game's default ({own:g})" if own <= worst else ""
        raise ValueError(
            f"invalid_move_penalty={penalty:g} is above {name}'s worst legal result {worst:g}, so an invalid "
            f"answer would score better than a legal loss; use invalid_move_penalty <= {worst:g}{unset}"
        )
    return float(penalty)


def _warn_invalid_answer_pays(game: TextGame, returns: tuple[float, float], penalty: float) -> None:
    """A game returned less than the invalid-move penalty: its `worst_legal_return` is declared too high."""
    name = type(game).__name__
    warnings.warn(
        f"{name} returned {min(returns):g} to a player, below the invalid-move penalty {penalty:g}: an invalid "
        f"answer scores better than that legal loss; declare {name}.worst_legal_return (the lowest return a "
        "legal game gives), which the penalty then defaults to",
        stacklevel=3,
    )


def _checked_seed(seed: Any) -> int | None:
    """`reset`'s seed as an int, or a clear error: as in Gymnasium, a seed is None or an integer >= 0."""
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"reset(seed={seed!r}): a seed is an int >= 0 or None, not {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"reset(seed={seed}): a seed must be >= 0 (random.Random would play seed {-seed}'s games)")
    return int(seed)


def _winner(returns: tuple[float, float]) -> int | None:
    if returns[0] == returns[1]:
        return None
    return 0 if returns[0] > returns[1] else 1
