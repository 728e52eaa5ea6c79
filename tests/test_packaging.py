"""Packaging as users get it: `python -m build` makes an sdist and a wheel, and the wheel, installed into a fresh
virtual environment with the example plugin beside it, serves our games, the plugin's and the version.

Slow for a unit test (two builds, a venv, dependencies from the package index: about a minute), but it is the
only test that sees the package the way `pip install spiral-envs` leaves it, not this checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("build")

CHECK = """
import importlib.metadata, spiral_envs
assert spiral_envs.__file__.startswith(sys.prefix), spiral_envs.__file__  # the wheel's copy, not the checkout
print(spiral_envs.__version__ == importlib.metadata.version("spiral-envs"))
env = spiral_envs.make("KuhnPoker-v1", num_rounds=1)
env.reset(seed=0)
agent = spiral_envs.make_agent("strong", "KuhnPoker-v1", seed=0)
obs, _, _, _, info = env.last()
env.step(agent(str(obs), info))
print(sorted(i for i in spiral_envs.registered_ids() if i in ("CoinGuess-v0", "KuhnPoker-v1", "TicTacToe-v0")))
plugin = spiral_envs.make("CoinGuess-v0")
plugin.reset(seed=1)
print(type(plugin.game).__name__, type(spiral_envs.make_agent("strong", "CoinGuess-v0")).__name__)
"""


def run(*args: str, cwd: Path | None = None) -> str:
    # without PYTHONPATH: a checkout put on it would shadow the installed wheel
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_the_wheel_in_a_fresh_venv_serves_our_games_and_plugins(tmp_path):
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(dist), str(ROOT))
    (wheel,) = dist.glob("spiral_envs-*.whl")
    (sdist,) = dist.glob("spiral_envs-*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    for module in (
        "spiral_envs/games/kuhn_theory.py",
        "spiral_train/rollout/generation/vllm.py",
        "spiral_train/rollout/records.py",
    ):
        assert module in names, module
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
    with tarfile.open(sdist) as archive:
        assert any(n.endswith("/spiral_train/distributed/worker.py") for n in archive.getnames())

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    python = str(venv / "bin" / "python")
    run(python, "-m", "pip", "install", "-q", str(wheel))
    run(python, "-m", "pip", "install", "-q", str(ROOT / "examples" / "coin_guess"))
    lines = run(python, "-c", "import sys\n" + CHECK, cwd=tmp_path).splitlines()
    assert lines == ["True", "['CoinGuess-v0', 'KuhnPoker-v1', 'TicTacToe-v0']", "CoinGuess CoinGuessAgent"]
