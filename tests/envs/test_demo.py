"""`spiral-demo`: the first thing a new user runs, so it must show every game and a sane summary."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import spiral_envs
from spiral_envs import make
from spiral_envs.demo import main

ENV_IDS = [i for i in spiral_envs.registered_ids() if not i.startswith("textarena/")]
ROW = re.compile(r"^(\S*)\s+(player_0|player_1|both)\s+(\d+)\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+)%\s+(\d+)$")


def run_demo(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 0
    return capsys.readouterr().out


def table_rows(output: str) -> dict[tuple[str, str], tuple[int, float, float, float, int]]:
    """The summary table by (game, seat); a blank game cell continues the game above it."""
    rows = {}
    game = ""
    for line in output.splitlines():
        match = ROW.match(line)
        if match:
            game = match[1] or game
            rows[game, match[2]] = (int(match[3]), float(match[4]), float(match[5]), float(match[6]), int(match[7]))
    return rows


def test_every_game_is_shown_with_a_result_and_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    output = run_demo(capsys, "--games", "6", "--seed", "3")
    results = [line for line in output.splitlines() if line.startswith("Result: ")]
    assert len(results) == len(ENV_IDS)
    for line in results:
        assert re.match(r"Result: (player_[01] \((strong|random)\) wins|draw); reason: .+; score: .+; rewards: ", line)
    rows = table_rows(output)
    for env_id in ENV_IDS:
        assert f"{env_id}: player_0 (strong) vs player_1 (random), seed 3" in output
        first, second, both = rows[env_id, "player_0"], rows[env_id, "player_1"], rows[env_id, "both"]
        assert first[0] + second[0] == both[0] == 6
        for _games, win, draw, loss, invalid in (first, second, both):
            assert win + draw + loss == pytest.approx(100.0, abs=0.2)
            assert invalid == 0, f"a scripted expert or RandomAgent made an invalid move in {env_id}"


def test_first_prompt_is_full_later_ones_skip_the_rules(capsys: pytest.CaptureFixture[str]) -> None:
    output = run_demo(capsys, "--env", "TicTacToe-v0", "--games", "0")
    rules = make("TicTacToe-v0").game.rules(0)
    assert output.count(rules) == 1
    assert "[rules for player_0 as above]" in output
    assert "Strong scripted agent vs" not in output  # --games 0: no table

    full = run_demo(capsys, "--env", "TicTacToe-v0", "--games", "0", "--full-prompts")
    assert "as above]" not in full
    assert full.count(rules) == sum(line.startswith("--- Turn") and "player_0" in line for line in full.splitlines())


def test_env_option_selects_games(capsys: pytest.CaptureFixture[str]) -> None:
    picked = ENV_IDS[:2]
    output = run_demo(capsys, *(arg for env_id in picked for arg in ("--env", env_id)), "--games", "2")
    for env_id in ENV_IDS:
        shown = f"{env_id}: player_0 (strong)" in output
        assert shown == (env_id in picked)
    assert {game for game, _ in table_rows(output)} == set(picked)


def test_same_seed_same_output(capsys: pytest.CaptureFixture[str]) -> None:
    args = ("--games", "4", "--seed", "11")
    assert run_demo(capsys, *args) == run_demo(capsys, *args)


def test_each_turn_shows_prompt_and_answer(capsys: pytest.CaptureFixture[str]) -> None:
    output = run_demo(capsys, "--env", "KuhnPoker-v1", "--games", "0", "--seed", "1")
    turns = [line for line in output.splitlines() if line.startswith("--- Turn ")]
    answers = [line for line in output.splitlines() if line.startswith(">>> ")]
    assert len(turns) == len(answers) >= 10  # five rounds of at least two moves each
    assert all("\\boxed{" in line for line in answers)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env", "TicTacToe-v9"], r"unknown env id 'TicTacToe-v9'.*TicTacToe-v0"),
        (["--games", "-1"], r"--games must be >= 0"),
        (["--seed", "x"], r"invalid int value"),
    ],
)
def test_bad_arguments_exit_with_a_message(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(args)
    assert excinfo.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_runs_as_a_module() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "spiral_envs.demo", "--env", "TicTacToe-v0", "--games", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "Result: " in completed.stdout
    assert "TicTacToe-v0" in completed.stdout
