"""Plain text for the Ray parts' error messages: resources as people read them, and remote errors uncoloured."""

from __future__ import annotations

import re
from collections.abc import Mapping

_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


class RunStopped(RuntimeError):
    """A Ray part stopped the run for good (a learner rank lost, a chunk that always fails); the message says why
    and what to do, so the command line prints it as it is, without a traceback."""


def describe_resources(resources: Mapping[str, float]) -> str:
    """ "4 CPUs and 1 GPUs": the CPUs and GPUs of a Ray resource dict."""
    return f"{resources.get('CPU', 0.0):g} CPUs and {resources.get('GPU', 0.0):g} GPUs"


def error_text(err: BaseException) -> str:
    """`err`'s text (for a Ray task error: the actor's traceback) without the terminal colours Ray adds."""
    return _COLOUR.sub("", str(err))
