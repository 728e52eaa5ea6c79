"""The README's commands, as written: `spiral-train` with no arguments, then every command of its Train and
Evaluate blocks that reads that run (`runs/...`), with the run's real folder put in for the placeholder. The
other commands there need a real model (`/models/...`), a file of the reader's (`my.yaml`) or a run of their own.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.learning

README = Path(__file__).resolve().parents[1] / "README.md"
RUN_PLACEHOLDER = re.compile(r"^runs/[^/]+")
ENTRY_POINTS = {"spiral-train": "spiral_train.cli", "spiral-eval": "spiral_train.eval.cli"}


def section_commands(heading: str) -> list[list[str]]:
    """The commands (split like a shell, comments dropped) of the bash blocks under `## heading`."""
    text = README.read_text()
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return [words for block in blocks for line in block.splitlines() if (words := shlex.split(line, comments=True))]


def reads_the_run(words: list[str]) -> bool:
    return words[0] in ENTRY_POINTS and any(RUN_PLACEHOLDER.match(word) for word in words[1:])


def run(words: list[str], cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", ENTRY_POINTS[words[0]], *words[1:]]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env={**os.environ}, timeout=3600)


def test_every_readme_command_that_reads_a_run_works_after_the_default_run(default_run):
    train = section_commands("Train")
    assert train[0] == ["spiral-train"], train[0]  # the main command, no arguments: what `default_run(0)` runs
    tmp_path, run_dir = default_run(0)
    readers = [words for words in train + section_commands("Evaluate") if reads_the_run(words)]
    named = {" ".join(words[:2]) for words in readers}
    assert {"spiral-eval games", "spiral-eval population", "spiral-eval reasoning", "spiral-train plot"} <= named
    for words in readers:
        real = [RUN_PLACEHOLDER.sub(str(run_dir.relative_to(tmp_path)), word) for word in words]
        done = run(real, tmp_path)
        assert done.returncode == 0, f"{shlex.join(words)}:\n{done.stderr[-3000:]}"
    # what the commands were there to show: two stages of the run played, and a population of its stages
    assert (run_dir / "eval" / "step_000080" / "games.json").exists()
    ratings = json.loads((run_dir / "eval" / "population" / "ratings.json").read_text())["ratings"]
    steps = sorted(r["step"] for r in ratings.values() if r["step"] is not None)
    assert steps[0] <= 20 and steps[-1] == 80 and len(steps) >= 4, steps  # every evaluation's policy, not two
    assert (run_dir / "curves.png").stat().st_size > 10_000
