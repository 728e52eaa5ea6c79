"""Checkpoints: a resumed run continues exactly as the uninterrupted one, and a kill loses and repeats nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import small_config

from spiral_train.checkpoint import UnsafeCheckpoint, latest_checkpoint, load_state
from spiral_train.metrics import read_metrics
from spiral_train.trainer import Trainer

pytestmark = pytest.mark.learning


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def test_resume_gives_the_same_next_step(quick_model, tmp_path):
    straight = Trainer(small_config(quick_model, steps=2), tmp_path / "straight")
    straight.run()
    expected = read_metrics(tmp_path / "straight")

    first = Trainer(small_config(quick_model, steps=1), tmp_path / "split")
    first.run()
    resumed = Trainer(small_config(quick_model, steps=2), tmp_path / "split", resume=True)
    assert resumed.step == 1
    resumed.run()
    got = read_metrics(tmp_path / "split")

    assert [r["step"] for r in got] == [0, 1, 2]
    for key in ("train/reward_mean", "loss", "grad_norm", "train/response_len", "rae/baseline/KuhnPoker-v1/player_0"):
        assert got[2][key] == expected[2][key], key
    for name, tensor in weights(straight).items():
        assert torch.equal(tensor, weights(resumed)[name]), name


def test_checkpoint_holds_model_tokenizer_optimizer_and_baselines(quick_model, tmp_path):
    Trainer(small_config(quick_model, steps=2, save_every=1, keep_checkpoints=1), tmp_path / "run").run()
    checkpoint = latest_checkpoint(tmp_path / "run")
    assert checkpoint is not None and checkpoint.name == "step_000002"
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step_*")) == ["step_000002"]
    assert (checkpoint / "model" / "config.json").exists()
    assert (checkpoint / "model" / "tokenizer.json").exists()
    state = torch.load(checkpoint / "state.pt", weights_only=False)
    assert state["step"] == 2
    assert state["learner"]["optimizer"]["state"]  # Adam moments are saved
    # a role gets a baseline once it has played a turn (player_0 always opens one-round Kuhn Poker)
    keys = {tuple(b[:2]) for b in state["rae"]["baselines"]}
    assert ("KuhnPoker-v1", "player_0") in keys
    assert keys <= {("KuhnPoker-v1", "player_0"), ("KuhnPoker-v1", "player_1")}


class _RunsCode:
    """A pickle that, loaded unchecked, would touch a file: what a hostile run folder could hold."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (self.marker.touch, ())


def test_resume_refuses_a_checkpoint_whose_pickle_would_run_code(quick_model, tmp_path, capsys):
    from spiral_train.cli import main

    run_dir = tmp_path / "run"
    Trainer(small_config(quick_model, steps=1), run_dir).run()
    checkpoint = latest_checkpoint(run_dir)
    state = load_state(checkpoint)  # what spiral-train writes loads as plain data
    assert state["step"] == 1
    marker = tmp_path / "pwned"
    torch.save({**state, "payload": _RunsCode(marker)}, checkpoint / "state.pt")
    with pytest.raises(UnsafeCheckpoint, match="holds more than tensors and plain data"):
        load_state(checkpoint)
    assert main(["--resume", str(run_dir), "--steps", "2", "--no-progress"]) == 2
    assert "it could run code" in capsys.readouterr().err
    assert not marker.exists()


def train_command(run_dir, *extra: str) -> list[str]:
    """`spiral-train` in a subprocess on the quick model: one-round Kuhn Poker, 6 games a step, no evaluation."""
    return [
        sys.executable, "-m", "spiral_train.cli",
        "--games-per-step", "6",
        "--num-envs", "3",
        "--eval-games", "0",
        "--no-progress",
        "--run-dir", str(run_dir),
        "--env-kwargs", '{"KuhnPoker-v1": {"num_rounds": 1}}',
        *extra,
    ]  # fmt: skip


def logged_steps(run_dir, name: str = "metrics.jsonl") -> list[int]:
    path = run_dir / name
    return [json.loads(line)["step"] for line in path.read_text().splitlines()] if path.exists() else []


def kill_when(proc: subprocess.Popen, ready, what: str) -> None:
    """SIGKILL `proc` as soon as `ready()` holds (polled); fail if the process ends first."""
    deadline = time.time() + 300
    while not ready():
        assert proc.poll() is None, f"the run ended before {what}: the test proves nothing"
        assert time.time() < deadline, f"no {what} in 300 s"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_sigkill_then_resume_loses_and_repeats_no_step(quick_model, tmp_path):
    run_dir = tmp_path / "killed"
    cmd = train_command(run_dir, "--model", str(quick_model), "--steps", "6", "--save-every", "1")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def second_checkpoint() -> bool:
        checkpoint = latest_checkpoint(run_dir)
        return checkpoint is not None and int(checkpoint.name.split("_")[1]) >= 2

    kill_when(proc, second_checkpoint, "second checkpoint")
    killed_at = int(latest_checkpoint(run_dir).name.split("_")[1])
    assert killed_at < 6, "the run finished before it could be killed; the test proves nothing"

    done = subprocess.run(
        [*cmd[:3], "--resume", str(run_dir), "--no-progress"], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert logged_steps(run_dir) == list(range(7))
    seconds = [r["time_s"] for r in read_metrics(run_dir)]
    assert seconds == sorted(set(seconds)), f"time_s restarts at the resume: {seconds}"


@pytest.mark.parametrize("lines", [1, 2, 3, 4, 5])
def test_a_kill_before_or_after_the_first_checkpoint_then_resume_repeats_no_step(quick_model, tmp_path, lines):
    """Killed once metrics.jsonl holds `lines` records (steps 0..lines-1) of a run that saves at steps 2 and 4:
    before the first checkpoint (1, 2), while step 2's checkpoint is being written or just after (3), and after
    it (4, 5). The resumed run logs every step once, and its transcripts hold no step twice."""
    run_dir = tmp_path / "killed"
    cmd = train_command(run_dir, "--model", str(quick_model), "--steps", "5", "--save-every", "2")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_when(proc, lambda: len(logged_steps(run_dir)) >= lines, f"{lines} metrics lines")
    checkpoint = latest_checkpoint(run_dir)
    resumed = Trainer(small_config(quick_model, steps=5, save_every=2), run_dir, resume=True)
    assert resumed.step == (0 if checkpoint is None else int(checkpoint.name.split("_")[1]))
    assert logged_steps(run_dir) == list(range(resumed.step + 1 if resumed.step else 0))
    resumed.run()
    assert logged_steps(run_dir) == list(range(6))
    transcripts = logged_steps(run_dir, "transcripts.jsonl")
    assert transcripts == sorted(transcripts) and set(transcripts) == set(range(1, 6))


def test_resume_with_no_checkpoint_starts_over_with_empty_logs(quick_model, tmp_path, capsys):
    """What a crash before the first checkpoint leaves: logs of steps 0..2 and no checkpoint."""
    run_dir = tmp_path / "run"
    Trainer(small_config(quick_model, steps=2, save_every=10), run_dir).run()
    shutil.rmtree(run_dir / "checkpoints")
    assert logged_steps(run_dir) == [0, 1, 2]
    lines = []
    resumed = Trainer(small_config(quick_model, steps=2, save_every=10), run_dir, resume=True, log=lines.append)
    assert resumed.step == 0
    assert logged_steps(run_dir) == [] and logged_steps(run_dir, "transcripts.jsonl") == []
    assert any("starting from step 0" in line and "emptied" in line for line in lines)
    resumed.run()
    assert logged_steps(run_dir) == [0, 1, 2]
