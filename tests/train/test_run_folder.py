"""A run folder under faults: one run at a time (a lock), a torn config.yaml refused, a damaged checkpoint named and
passed over for the intact one before it."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import small_config

from spiral_train.checkpoint import DamagedCheckpoint, load_state, resume_point
from spiral_train.cli import main
from spiral_train.run_folder import LOCK_FILE, RunFolderBusy, RunFolderLock

HOLD = "import sys, time; from pathlib import Path; from spiral_train.run_folder import RunFolderLock; "
HOLD += "lock = RunFolderLock.acquire(Path(sys.argv[1])); print('locked', flush=True); time.sleep(600)"


def hold_lock(run_dir) -> subprocess.Popen:
    """Another process that locks `run_dir` and holds it until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_locked_folder_is_refused_naming_the_holder_and_freed_when_the_holder_is_killed(tmp_path):
    proc = hold_lock(tmp_path)
    try:
        with pytest.raises(RunFolderBusy, match=f"in use by another run \\(pid {proc.pid} on .*, since 20"):
            RunFolderLock.acquire(tmp_path)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    lock = RunFolderLock.acquire(tmp_path)  # the kernel dropped the killed holder's lock
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    with pytest.raises(RunFolderBusy, match=f"pid {os.getpid()}"):
        RunFolderLock.acquire(tmp_path)  # a second lock in the same process is refused too
    lock.release()
    RunFolderLock.acquire(tmp_path).release()


def test_a_second_run_on_a_folder_in_use_is_refused_at_start(quick_model, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc = hold_lock(run_dir)  # what a running spiral-train holds
    try:
        assert main(["--model", str(quick_model), "--steps", "1", "--no-progress", "--run-dir", str(run_dir)]) == 2
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"in use by another run (pid {proc.pid}" in err
    assert not (run_dir / "metrics.jsonl").exists()


@pytest.mark.learning
def test_two_training_runs_on_one_folder_the_second_is_refused(quick_model, tmp_path, capsys):
    run_dir = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "spiral_train.cli", "--model", str(quick_model), "--steps", "50", "--no-progress",
         "--eval-games", "0", "--games-per-step", "6", "--run-dir", str(run_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.time() + 300
        while not (run_dir / "metrics.jsonl").exists():
            assert first.poll() is None and time.time() < deadline
            time.sleep(0.05)
        assert main(["--resume", str(run_dir), "--no-progress"]) == 2
        assert f"pid {first.pid}" in capsys.readouterr().err
        assert main(["--model", str(quick_model), "--steps", "1", "--no-progress", "--run-dir", str(run_dir)]) == 2
        assert first.poll() is None
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))


@pytest.fixture(scope="module")
def two_checkpoints(quick_model, tmp_path_factory):
    """A finished 2-step run with checkpoints at steps 1 and 2."""
    from spiral_train.trainer import Trainer

    run_dir = tmp_path_factory.mktemp("saved") / "run"
    Trainer(small_config(quick_model, steps=2, keep_checkpoints=2), run_dir).run()
    return run_dir


@pytest.mark.parametrize("damage", ["cut", "empty", "not yaml", "not a mapping", "bad value"])
def test_resume_refuses_a_torn_config_yaml_naming_it(two_checkpoints, tmp_path, capsys, damage):
    run_dir = tmp_path / "run"
    shutil.copytree(two_checkpoints, run_dir)
    path = run_dir / "config.yaml"
    text = path.read_text()
    assert "steps: 2\n" in text
    torn = {
        "cut": text[:300],
        "empty": "",
        "not yaml": text[:300] + "\n  - [unclosed: {\n",
        "not a mapping": "- 1\n- 2\n",
        "bad value": text.replace("steps: 2\n", "steps: -3\n"),
    }[damage]
    path.write_text(torn)
    assert main(["--resume", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err, err
    assert [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2]


def _damage(checkpoint, how: str) -> str:
    """Damage one file of `checkpoint` as `how` says; the file's name."""
    state_path, weights = checkpoint / "state.pt", checkpoint / "model" / "model.safetensors"
    state = load_state(checkpoint)
    if how == "state cut":
        state_path.write_bytes(state_path.read_bytes()[:1000])
    elif how == "state empty":
        state_path.write_bytes(b"")
    elif how == "state random bytes":
        state_path.write_bytes(random.Random(0).randbytes(4000))
    elif how == "state missing":
        state_path.unlink()
    elif how == "state lacks keys":
        torch.save({k: v for k, v in state.items() if k not in ("rae", "rng")}, state_path)
    elif how == "bad step":
        torch.save({**state, "step": "two"}, state_path)
    elif how == "bad rng state":
        torch.save({**state, "rng": (3, (1, 2, 3), None)}, state_path)
    elif how == "bad torch rng state":
        torch.save({**state, "torch_global_rng": torch.zeros(7)}, state_path)
    elif how == "weights cut":
        weights.write_bytes(weights.read_bytes()[:5000])
    elif how == "weights garbage":
        weights.write_bytes(random.Random(1).randbytes(weights.stat().st_size))
    else:
        raise AssertionError(how)
    return "model.safetensors" if how.startswith("weights") else "state.pt"


CASES = [
    "state cut", "state empty", "state random bytes", "state missing", "state lacks keys", "bad step",
    "bad rng state", "bad torch rng state", "weights cut", "weights garbage",
]  # fmt: skip


@pytest.mark.parametrize("how", CASES)
def test_a_damaged_checkpoint_is_named_and_the_one_before_it_used(quick_model, two_checkpoints, tmp_path, how):
    import dataclasses

    from spiral_train.models import loading
    from spiral_train.trainer import views

    run_dir = tmp_path / "run"
    shutil.copytree(two_checkpoints, run_dir)
    newest = run_dir / "checkpoints" / "step_000002"
    name = _damage(newest, how)
    source = views.ModelSource.from_config(small_config(quick_model, steps=2))

    def load(folder):
        return loading.load_model(dataclasses.replace(source, model=str(folder)), torch.device("cpu"), print)

    lines: list[str] = []
    found = resume_point(run_dir, load, log=lines.append)
    assert found is not None and found[0].name == "step_000001" and found[1]["step"] == 1
    assert lines[0].startswith("warning: ") and str(newest) in lines[0] and name in lines[0], lines
    assert len(lines) == 2 and "\n" not in "".join(lines)

    _damage(run_dir / "checkpoints" / "step_000001", how)  # both damaged: refused, naming the newest's file
    with pytest.raises(DamagedCheckpoint, match=f"no intact checkpoint .*{newest}.*{name}"):
        resume_point(run_dir, load, log=lines.append)


@pytest.mark.learning
@pytest.mark.parametrize("how", ["state cut", "weights garbage"])
def test_resume_past_a_damaged_checkpoint_repeats_no_step(quick_model, two_checkpoints, tmp_path, capsys, how):
    run_dir = tmp_path / "run"
    shutil.copytree(two_checkpoints, run_dir)
    _damage(run_dir / "checkpoints" / "step_000002", how)
    assert main(["--resume", str(run_dir), "--steps", "3", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "warning: " in out and "resumed" in out and "at step 1" in out
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2, 3]


@pytest.mark.learning
def test_resume_from_only_damaged_checkpoints_is_one_line(quick_model, two_checkpoints, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(two_checkpoints, run_dir)
    for step in (1, 2):
        _damage(run_dir / "checkpoints" / f"step_00000{step}", "state empty")
    assert main(["--resume", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spiral-train: error: no intact checkpoint") and len(err.splitlines()) == 1, err
    assert RunFolderLock.acquire(run_dir)  # the refused run let go of the folder


def test_any_bytes_in_state_pt_are_a_damaged_checkpoint_naming_the_file(tmp_path):
    """Other bytes than a checkpoint fail torch's readers in many ways (IndexError, TypeError, ...): each is one
    `DamagedCheckpoint` naming the file, never a traceback (200 seeded byte strings, some with a pickle's
    opening bytes)."""
    from spiral_train.checkpoint import STATE_FILE, DamagedCheckpoint, load_state

    folder = tmp_path / "step_000001"
    folder.mkdir()
    for seed in range(200):
        rng = random.Random(seed)
        data = rng.randbytes(rng.randrange(1, 4000))
        (folder / STATE_FILE).write_bytes(b"\x80\x02" + data if seed % 2 else data)
        with pytest.raises(DamagedCheckpoint, match=STATE_FILE):
            load_state(folder)


def test_a_run_saved_before_an_option_existed_resumes_as_it_ran(tmp_path):
    import yaml

    from spiral_train.config import make_config, to_dict
    from spiral_train.run_folder import LATER_OPTIONS, read_saved_config

    saved = {k: v for k, v in to_dict(make_config("tiny-cpu", {})).items() if k not in LATER_OPTIONS}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    options = read_saved_config(tmp_path)
    assert (options["policy_average"], options["kl_anchor"]) == ("none", "start")  # last iterate, start anchor
    assert options["keep_evaluated"] is False  # its newest checkpoints only
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**saved, "policy_average": "ema"}))
    assert read_saved_config(tmp_path)["policy_average"] == "ema"  # what a file holds wins
