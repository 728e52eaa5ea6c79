"""`--help` for `TrainConfig`: the options in source order under their `# heading` comments, each field's
docstring its help (one source for the code and the CLI)."""

from __future__ import annotations

import ast
import inspect
import textwrap

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
