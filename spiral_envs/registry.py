"""Environment ids -> constructors, for our games and for games that other packages ship.

A third-party package adds games without touching this one: it declares, in its own `pyproject.toml`,

    [project.entry-points."spiral_envs.envs"]
    "MyGame-v0" = "my_game:MyGame"

(a `TextGame` class, which `make` wraps in a `TextGameEnv`, or any callable that returns an `AECEnv`), and
after `pip install my-game`, `spiral_envs.make("MyGame-v0")` works. Entry points are read once, on the
first lookup of an id that is not registered in code; their modules are imported only when a game is made.

An id is registered once: `register` refuses an id that code or an installed package's entry point already
holds (naming the holder), unless asked to replace it with `register(..., replace=True)`.

With TextArena installed (`pip install "spiral-envs[textarena]"`), its two-player games are registered the
same way, as "textarena/<TextArena id>" (see `spiral_envs.textarena_games`).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pettingzoo import AECEnv

from spiral_envs import textarena_games
from spiral_envs.core import TextGame
from spiral_envs.env import TextGameEnv

ENTRY_POINT_GROUP = "spiral_envs.envs"
ENV_OPTIONS = tuple(
    p.name for p in inspect.signature(TextGameEnv.__init__).parameters.values() if p.kind is p.KEYWORD_ONLY
)
"""The options `make` gives a registered game's `TextGameEnv`; the others go to the game."""
_ID = re.compile(r"[A-Za-z][A-Za-z0-9_.:/]*-v\d+")
MAX_LISTED_IDS = 12
"""An unknown id's error lists this many known ids, closest first (TextArena adds over a hundred)."""


class UnknownEnvError(KeyError):
    """`make` of an id nobody registered; the message lists the known ids, closest first."""

    def __str__(self) -> str:  # KeyError would print the message in quotes, with escapes
        return str(self.args[0])


@dataclass(frozen=True)
class EnvSpec:
    """What `make(id)` needs: the constructor (or its "module:attr" path) and default keyword arguments; the
    game's expert, the agent class `make_agent("strong", id)` builds (or its path; None: the entry point's
    `strong_agent`, which is how a game installed by an entry point names one); and the game's theory, the
    `spiral_envs.theory.GameTheory` subclass evaluation measures strategy with (or its path; None: the entry
    point's `theory`, else the game has none)."""

    env_id: str
    entry_point: Callable[..., AECEnv] | str
    default_kwargs: dict[str, Any] = field(default_factory=dict)
    expert: Callable[..., Any] | str | None = None
    theory: Callable[..., Any] | str | None = None
    origin: str = ""
    """Who registered the id, in words, for errors: code ("" then: the entry point is shown) or the installed
    package whose entry point declares it."""

    def load(self) -> Callable[..., AECEnv]:
        return _resolve(self.env_id, self.entry_point)

    def load_expert(self) -> Callable[..., Any] | None:
        """The expert agent class: the registered one, else the entry point's `strong_agent`, else None."""
        if self.expert is not None:
            return _resolve(self.env_id, self.expert)
        return getattr(self.load(), "strong_agent", None)

    def load_theory(self) -> Callable[..., Any] | None:
        """The game's theory class: the registered one, else the entry point's `theory`, else None."""
        if self.theory is not None:
            return _resolve(self.env_id, self.theory)
        return getattr(self.load(), "theory", None)


def _resolve(env_id: str, target: Callable[..., Any] | str) -> Callable[..., Any]:
    if callable(target):
        return target
    module_name, _, attr = target.partition(":")
    if not attr:
        raise ValueError(f"{env_id}: entry point {target!r} must look like 'package.module:Name'")
    return _imported(module_name, attr)


@functools.cache
def _imported(module_name: str, attr: str) -> Callable[..., Any]:
    """`module:attr`, imported once (a failed import is not cached, so it is retried and reported again)."""
    return getattr(importlib.import_module(module_name), attr)


_REGISTRY: dict[str, EnvSpec] = {}
_SHIPPED: set[str] = set()
"""The ids of this package's own games."""
_plugins_loaded = False


def register(
    env_id: str,
    entry_point: Callable[..., AECEnv] | str,
    *,
    replace: bool = False,
    expert: Callable[..., Any] | str | None = None,
    theory: Callable[..., Any] | str | None = None,
    **default_kwargs: Any,
) -> None:
    """Register `env_id` so `make(env_id)` builds the game `entry_point` names with `default_kwargs` (a
    `TextGame` class, wrapped in a `TextGameEnv`, or an env constructor), `make_agent("strong", env_id)`
    builds `expert(seed=...)`, and evaluation measures strategy with `theory` (a `spiral_envs.theory.GameTheory`
    subclass); each may be given as "module:Name", imported on first use.

    Ids follow Gymnasium's `Name-vN` form, so that a rules change can ship as a new version beside the old.
    An id already held, by an earlier `register` or by an installed package's entry point (group
    `spiral_envs.envs`; read from its metadata, its module is not imported), raises ValueError naming the
    holder; `replace=True` replaces either.
    """
    _check_id(env_id)
    if not replace:
        holder = _holder(env_id)
        if holder is not None:
            raise ValueError(
                f"{env_id} is already registered ({holder}); register your game under another id or version, "
                "or pass replace=True to replace it"
            )
    _REGISTRY[env_id] = EnvSpec(env_id, entry_point, dict(default_kwargs), expert, theory)


def _register_shipped(
    env_id: str, entry_point: str, *, expert: str | None = None, theory: str | None = None, **default_kwargs: Any
) -> None:
    """Register one of this package's own games at import, without reading entry points (an installed
    package that declares the same id cannot make `import spiral_envs` fail; it is ignored, with a warning)."""
    _check_id(env_id)
    _REGISTRY[env_id] = EnvSpec(env_id, entry_point, default_kwargs, expert, theory, origin="shipped with spiral_envs")
    _SHIPPED.add(env_id)


def _check_id(env_id: Any) -> None:
    if not isinstance(env_id, str) or not _ID.fullmatch(env_id):
        raise ValueError(f"env id {env_id!r} must look like 'Name-vN', e.g. 'KuhnPoker-v1'")


def _holder(env_id: str) -> str | None:
    """Who holds `env_id`, in words, or None: a registration (in code or from an entry point already read),
    an installed package's entry point not yet read, or TextArena (a "textarena/" id, with TextArena)."""
    if env_id in _REGISTRY:
        held = _REGISTRY[env_id]
        return held.origin or f"by {held.entry_point!r}"
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=env_id):
        return _entry_point_origin(ep)
    textarena_id = env_id.removeprefix(textarena_games.PREFIX)
    if textarena_id != env_id and textarena_games.installed() and textarena_id in textarena_games.textarena_ids():
        return "by the installed package textarena"
    return None


def _entry_point_origin(ep: EntryPoint) -> str:
    """E.g. "by the installed package spiral-coin-guess 0.1.0, entry point 'CoinGuess-v0 = coin_guess:CoinGuess'
    in group spiral_envs.envs"."""
    dist = getattr(ep, "dist", None)
    package = f"the installed package {dist.name} {dist.version}" if dist is not None else "an installed package"
    return f"by {package}, entry point '{ep.name} = {ep.value}' in group {ep.group}"


def registered_ids() -> list[str]:
    """Every id `make` accepts, our games and installed plugins, sorted."""
    _load_plugins()
    return sorted(_REGISTRY)


def spec(env_id: str) -> EnvSpec:
    """The registration of `env_id`; an unknown id raises `KeyError` listing the known ids, closest first."""
    if env_id not in _REGISTRY:
        _load_plugins()
    try:
        return _REGISTRY[env_id]
    except KeyError:
        pass
    if isinstance(env_id, str) and env_id.startswith(textarena_games.PREFIX) and not textarena_games.installed():
        hint = textarena_games.INSTALL_HINT
        raise UnknownEnvError(f"{env_id} is a TextArena game, and TextArena is not installed: {hint}")
    known = sorted(_REGISTRY)
    close = difflib.get_close_matches(str(env_id), known, n=len(known), cutoff=0.0)
    more = len(close) - MAX_LISTED_IDS
    listed = ", ".join(close[:MAX_LISTED_IDS])
    if more > 0:
        listed += f" (and {more} more: spiral_envs.registered_ids())"
    raise UnknownEnvError(f"unknown env id {env_id!r}; known ids, closest first: {listed}") from None


def make(env_id: str, **kwargs: Any) -> AECEnv:
    """Build a fresh environment; `kwargs` override the registered defaults (e.g. `num_rounds=1`).

    An id registered as a `TextGame` class gets a `TextGameEnv` around a new game: the env's own options
    (`history`, `invalid_move_penalty`, `error_allowance`, `render_mode`) go to the env, the rest to the
    game's constructor. An id registered as any other callable (an env class) is called with them all.
    """
    env_spec = spec(env_id)
    constructor = env_spec.load()
    options = {**env_spec.default_kwargs, **kwargs}
    if isinstance(constructor, type) and issubclass(constructor, TextGame):
        game_accepts = _accepted_options(constructor)
        _check_options(env_id, None if game_accepts is None else (*game_accepts, *ENV_OPTIONS), options)
        game = constructor(**{k: v for k, v in options.items() if k not in ENV_OPTIONS})
        env = TextGameEnv(game, **{k: v for k, v in options.items() if k in ENV_OPTIONS})
        env.metadata = {**env.metadata, "name": _snake_case(env_id)}
        return env
    _check_options(env_id, _accepted_options(constructor), options)
    return constructor(**options)


@functools.cache
def _snake_case(env_id: str) -> str:
    """PettingZoo's env name for an id: "KuhnPoker-v1" -> "kuhn_poker_v1", "textarena/Nim-v0" -> "textarena_nim_v0"."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", env_id).replace("-", "_").replace("/", "_").lower()


def _check_options(env_id: str, accepted: tuple[str, ...] | None, options: dict[str, Any]) -> None:
    """Reject an unknown option by name, with the accepted ones, before the constructor's bare TypeError."""
    if accepted is None:
        return
    for name in options:
        if name not in accepted:
            hint = difflib.get_close_matches(name, accepted, n=1)
            did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise TypeError(f"{env_id} has no option {name!r}{did_you_mean}; its options are: {', '.join(accepted)}")


@functools.cache
def _accepted_options(constructor: Callable[..., AECEnv]) -> tuple[str, ...] | None:
    """Keyword names the constructor takes, following `**kwargs` up a class's bases; None if open-ended.
    A class whose only `__init__` is `object`'s takes none."""
    if isinstance(constructor, type):
        functions = [vars(c)["__init__"] for c in constructor.__mro__ if "__init__" in vars(c) and c is not object]
        if not functions:
            return ()
    else:
        functions = [constructor]
    names: list[str] = []
    for function in functions:
        try:
            params = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):
            return None
        for p in params:
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in ("self", "game", *names):
                names.append(p.name)
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return tuple(names)
    return None


def _load_plugins() -> None:
    """Read the installed entry points once (names and "module:attr" paths; nothing is imported) and TextArena's
    ids. An id registered in code is kept: with `replace=True` on purpose, and a shipped game's id because a
    package may not take it (it is ignored, with a warning naming it)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY:
            if ep.name in _SHIPPED:
                warnings.warn(
                    f"{ep.name} is a game shipped with spiral_envs; ignoring {_entry_point_origin(ep)[3:]} "
                    "(its package should use another id)",
                    stacklevel=3,
                )
            continue
        _check_id(ep.name)
        _REGISTRY[ep.name] = EnvSpec(ep.name, ep.value, origin=_entry_point_origin(ep))
    for textarena_id in textarena_games.textarena_ids():  # TextArena's ids ("Snake-v0-large") are not all Name-vN
        env_id = textarena_games.PREFIX + textarena_id
        _REGISTRY.setdefault(env_id, EnvSpec(env_id, textarena_games.game_class(textarena_id)))
