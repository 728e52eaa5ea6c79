"""The modules' import graph: no cycles (counting imports inside functions), and `spiral_envs` stands alone."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("spiral_envs", "spiral_train")


def module_files() -> dict[str, Path]:
    files = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules `name` imports anywhere in its file (top level, functions, TYPE_CHECKING blocks)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {module for module in found if module in known and module != name}


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imports(name, path, set(files)) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_itself_through_others():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_spiral_envs_imports_nothing_of_the_trainer_or_torch():
    for name, path in module_files().items():
        if not name.startswith("spiral_envs"):
            continue
        nodes = list(ast.walk(ast.parse(path.read_text())))
        roots = {a.name.split(".")[0] for n in nodes if isinstance(n, ast.Import) for a in n.names}
        roots |= {(n.module or "").split(".")[0] for n in nodes if isinstance(n, ast.ImportFrom) and not n.level}
        assert not roots & {"spiral_train", "torch", "transformers"}, name


TOP = ("spiral_train.trainer", "spiral_train.cli")
GAMES = ("spiral_envs.games", "spiral_envs.env", "spiral_envs.registry", "spiral_envs.theory", "spiral_envs.agents")
FORBIDDEN = {
    "spiral_train.models": ("spiral_train.rollout", "spiral_train.eval", "spiral_train.reasoning", *TOP),
    "spiral_train.rollout": ("spiral_train.eval", "spiral_train.reasoning", *TOP),
    "spiral_train.eval": ("spiral_train.distributed", *TOP),
    "spiral_train.reasoning": (*GAMES, "spiral_train.eval", "spiral_train.rollout.collector", *TOP),
    "spiral_train.rae": ("spiral_train.metrics",),
    "spiral_train.learner": ("spiral_envs", "spiral_train.rollout.collector", "spiral_train.eval"),
}
"""A folder (or module) -> what its modules never import: the layout's dependencies point one way (models and
games below the rollouts, rollouts below evaluation and the loop; reasoning benchmarks never touch a game, only
the statistics and the answer reading they share with the games)."""


def project_imports(path: Path) -> set[str]:
    """Every module `path` imports, by absolute name (anywhere in the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
            found.add(node.module or "")
    return found


def test_dependencies_point_one_way():
    broken = []
    for name, path in module_files().items():
        for owner, banned in FORBIDDEN.items():
            if name == owner or name.startswith(owner + "."):
                bad = sorted(i for i in project_imports(path) for b in banned if i == b or i.startswith(b + "."))
                broken += [f"{name} imports {i}" for i in bad]
    assert broken == []


def test_only_the_cli_the_trainer_and_the_config_package_read_the_whole_training_config():
    allowed = {"spiral_train.cli", "spiral_train.trainer"}
    readers = sorted(
        name
        for name, path in module_files().items()
        if "spiral_train.config.TrainConfig" in project_imports(path)
        and name not in allowed
        and not name.startswith("spiral_train.config")
    )
    assert readers == []


def test_every_module_of_the_trainer_is_under_400_lines():
    files = {name: path for name, path in module_files().items() if name.startswith("spiral_train")}
    long = {name: n for name, path in files.items() if (n := len(path.read_text().splitlines())) > 400}
    assert long == {}


def test_old_import_paths_give_the_moved_modules_themselves():
    import importlib

    import spiral_train

    for old, new in spiral_train._MOVED.items():
        if old == "spiral_train.generation":
            old, new = old + ".hf", new + ".hf"  # a submodule of a moved package, too
        assert importlib.import_module(old) is importlib.import_module(new), old
