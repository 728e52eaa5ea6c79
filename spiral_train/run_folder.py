"""A run folder held by one run at a time, and the run's saved config read back on `--resume`.

The lock is an `fcntl.flock` on `run_dir/.lock`, held for the run's life: the operating system releases it when
the process exits, however it ends (SIGKILL included), so a crashed run never leaves a folder locked. The file
records who holds it (pid, host, start time) for the message that refuses a second run.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from spiral_train.checkpoint import RunFolderError
from spiral_train.config import ConfigError, load_yaml, make_config

LOCK_FILE = ".lock"
CONFIG_FILE = "config.yaml"


class RunFolderBusy(RunFolderError):
    """Another process is training in the run folder."""


class RunFolderLock:
    """Holds `run_dir/.lock` until `release()` or the process's end; `acquire` refuses a folder another run holds."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, run_dir: Path) -> RunFolderLock:
        """Lock `run_dir` (which must exist) for this process, or raise `RunFolderBusy` naming the run that holds it."""
        path = run_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise RunFolderBusy(
                f"{run_dir} is in use by another run ({holder}); wait for it to end or stop it, "
                "or give this run another --run-dir"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        return cls(path, fd)

    def release(self, forget_empty_folder: bool = False) -> None:
        """Unlock (idempotent). The file stays (removed, a run that opened it before could lock it beside a new
        one), except with `forget_empty_folder` where it is all the folder holds: a run that never started."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if forget_empty_folder and [p.name for p in self.path.parent.iterdir()] == [LOCK_FILE]:
            self.path.unlink(missing_ok=True)
        os.close(fd)  # closing the only descriptor releases the flock

    def __del__(self) -> None:
        self.release()


def _holder(fd: int) -> str:
    """Who holds the lock, as its file says: "pid 123 on host, since 2026-12-06 08:15:00"."""
    try:
        record = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"pid {record['pid']} on {record['host']}, since {record['started']}"
    except (ValueError, KeyError, TypeError):
        return "a process that has not yet written its pid"


def read_saved_config(run_dir: Path) -> dict[str, Any]:
    """The options `run_dir/config.yaml` saved, for `--resume`: refused with one line naming the file when it does
    not parse, is not a mapping, holds a value that does not validate, or lacks an option (a file cut short).
    """
    path = run_dir / CONFIG_FILE
    if not path.exists():
        raise ConfigError(f"--resume {run_dir}: no {CONFIG_FILE} there; is it a spiral-train run folder?")
    try:
        data = load_yaml(path)  # not UTF-8, not YAML, a !!tag, not a mapping: one line naming the file
    except ConfigError as err:
        raise ConfigError(f"--resume: damaged: {err}; {_FIX}") from None
    if not data:
        raise ConfigError(f"--resume: {path} is empty; {_FIX}")
    saved = {k: v for k, v in data.items() if k != "model_source"}
    saved = {**LATER_OPTIONS, **saved}  # a file from before an option existed continues as it ran
    try:
        config = make_config("tiny-cpu", saved)
    except ConfigError as err:
        raise ConfigError(f"--resume: {path} does not validate (cut short?): {err}; {_FIX}") from None
    missing = [f.name for f in dataclasses.fields(config) if f.name not in saved]
    if missing:
        listed = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ConfigError(f"--resume: {path} is damaged (cut short? it lacks {listed}); {_FIX}")
    return saved


_FIX = "restore it, or start a new run with the run's options"
LATER_OPTIONS = {"policy_average": "none", "policy_average_decay": 0.9, "kl_anchor": "start", "keep_evaluated": False}
"""Options added after runs were saved, and the value that continues such a run as it was trained (before
`policy_average` a run evaluated and shipped its last iterate; before `keep_evaluated` it kept its newest
checkpoints only)."""


def new_run_dir() -> Path:
    """A fresh `runs/<date>-<time>[-n]` folder name (not created)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / stamp
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path("runs") / f"{stamp}-{suffix}"
    return path
