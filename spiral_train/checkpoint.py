"""Checkpoints that survive a crash at any instant, and resume that neither loses nor repeats a step.

A checkpoint is written into a temporary folder and renamed into place (rename is atomic), then the
`latest` pointer is replaced atomically. A SIGKILL mid-write leaves at worst a stray temporary folder, never
a half-written checkpoint under a real name; resume reads `latest` (or the newest complete folder).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

STATE_FILE = "state.pt"
COMPLETE_MARK = "COMPLETE"


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def save_checkpoint(run_dir: Path, step: int, model: Any, tokenizer: Any, state: dict[str, Any], keep: int) -> Path:
    root = checkpoint_dir(run_dir)

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp / "model")
        tokenizer.save_pretrained(tmp / "model")
        torch.save({**state, "step": step}, tmp / STATE_FILE)
        (tmp / COMPLETE_MARK).write_text(str(step))

    final = write_folder_atomically(root / f"step_{step:06d}", fill)
    write_atomic(root / "latest", final.name)
    _prune(root, keep)
    return final


def write_folder_atomically(final: Path, fill: Callable[[Path], None]) -> Path:
    """`fill` writes into a temporary folder beside `final` (`.tmp-<name>-<pid>`), whose files are synced to
    disk and which is then renamed to `final`, replacing any older one: a crash leaves the old folder or the
    new one, never half of one. Stray temporary folders of other processes are for the caller to prune."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    fill(tmp)
    _fsync_tree(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    root = checkpoint_dir(run_dir)
    pointer = root / "latest"
    if pointer.exists():
        candidate = root / pointer.read_text().strip()
        if (candidate / COMPLETE_MARK).exists():
            return candidate
    complete = sorted(p for p in root.glob("step_*") if (p / COMPLETE_MARK).exists()) if root.exists() else []
    return complete[-1] if complete else None


class UnsafeCheckpoint(ValueError):
    """A checkpoint's `state.pt` holds more than tensors and plain data, so loading it could run code."""


def load_state(checkpoint: Path) -> dict[str, Any]:
    """The training state of a checkpoint: tensors, numbers, strings, lists, tuples and dicts only.

    Loaded with `weights_only=True`, so a run folder from someone else cannot run code on `--resume` (a
    pickle names any callable to rebuild an object; this refuses every one that is not plain data).
    """
    path = checkpoint / STATE_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UnsafeCheckpoint(
            f"{path} holds more than tensors and plain data, so it was not loaded (it could run code): {reason}. "
            "A checkpoint that spiral-train wrote never does; resume only from run folders you trust"
        ) from None


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def truncate_jsonl(path: Path, max_step: int) -> None:
    """Drop records of steps after `max_step` (they will be played again), atomically."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by the crash
        if isinstance(record, dict) and record.get("step", 0) <= max_step:
            kept.append(line)
    write_atomic(path, "".join(line + "\n" for line in kept))


def _prune(root: Path, keep: int) -> None:
    complete = sorted(p for p in root.glob("step_*") if (p / COMPLETE_MARK).exists())
    for old in complete[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stray in root.glob(".tmp-*"):
        if not stray.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(stray, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
