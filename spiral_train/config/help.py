"""`--help` for `TrainConfig`: the options in source order under their `# heading` comments, each field's
docstring its help (one source for the code and the CLI)."""

from __future__ import annotations

import argparse
import ast
import inspect
import textwrap
from typing import Any, get_args, get_origin

from spiral_train.config.schema import TrainConfig


def option_groups() -> list[tuple[str, list[tuple[str, str]]]]:
    """`TrainConfig`'s options as (heading, [(field name, docstring)]) in source order: a heading is a
    `# comment` line in the class body, a field's help is the string under it."""
    source = textwrap.dedent(inspect.getsource(TrainConfig))
    lines = source.splitlines()
    body = ast.parse(source).body[0].body
    groups: list[tuple[str, list[tuple[str, str]]]] = []
    for node, after in zip(body, [*body[1:], None]):
        if not isinstance(node, ast.AnnAssign):
            continue
        above = lines[node.lineno - 2].strip()
        if above.startswith("# ") or not groups:
            groups.append((above[2:] if above.startswith("# ") else "options", []))
        doc = ""
        if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
            doc = " ".join(after.value.value.split())
        groups[-1][1].append((node.target.id, doc))
    return groups


def metavar(annotation: Any) -> str:
    """The placeholder `--help` shows for a field's value: INT, NUM, STR, MAP, or the item's for a list."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (list, tuple):
        return metavar(args[0])
    if args and get_origin(annotation) is not dict:  # Optional[X]
        return metavar(args[0])
    if annotation is dict or get_origin(annotation) is dict:
        return "MAP"
    return {int: "INT", float: "NUM"}.get(annotation, "STR")


def show_default(value: Any) -> str:
    """A default as `--help` shows it: YAML-like, no Python quotes."""
    if isinstance(value, (list, tuple)):
        return ", ".join(show_default(v) for v in value) or "empty"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


class HelpFormatter(argparse.HelpFormatter):
    """One paragraph an option, `--flag VALUE  contract [default]`, wrapped at 110 columns: no column of
    padding, so 80 options fit in a few screens."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=110)

    def _format_action(self, action: argparse.Action) -> str:
        if not action.option_strings:
            return super()._format_action(action)
        text = self._format_action_invocation(action)
        if action.help:
            text += "  " + self._expand_help(action)
        return (
            textwrap.fill(text, self._width, initial_indent="  ", subsequent_indent="      ", break_on_hyphens=False)
            + "\n"
        )

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if isinstance(action, argparse.BooleanOptionalAction):
            return "--[no-]" + action.option_strings[0][2:]
        flags = ", ".join(action.option_strings)
        if action.nargs == 0:
            return flags
        value = action.metavar or action.dest.upper()
        return f"{flags} {value}" + (" ..." if action.nargs == "+" else "")
