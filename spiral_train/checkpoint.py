"""Checkpoints that survive a crash at any instant, and resume that neither loses nor repeats a step.

A checkpoint is written into a temporary folder and renamed into place (rename is atomic), then the
`latest` pointer is replaced atomically. A SIGKILL mid-write leaves at worst a stray temporary folder, never
a half-written checkpoint under a real name; resume reads `latest` (or the newest complete folder).
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import struct
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

import torch

STATE_FILE = "state.pt"
COMPLETE_MARK = "COMPLETE"
STATE_KEYS = ("step", "learner", "rae", "rng", "torch_rng", "torch_global_rng", "config")
"""What every `state.pt` holds (`Trainer.save`); "pool", "model_base" and "policy_average" may be None."""
LAST_ITERATE = "last_iterate"
"""With a policy average, the checkpoint's folder of the trained weights (`model/` holds the average)."""
POLICY_FILE = "policy.json"
"""With a policy average, what each model folder of the checkpoint holds, in words."""
EVALUATED_MARK = "EVALUATED"
"""A checkpoint taken at an evaluation step: pruning keeps its `model/` folder (`keep_evaluated`)."""
POLICY_ONLY_MARK = "POLICY_ONLY"
"""A pruned evaluated checkpoint: `model/` only (no training state, so not a resume point)."""
T = TypeVar("T")


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: Any,
    tokenizer: Any,
    state: dict[str, Any],
    keep: int,
    shipped: Callable[[], AbstractContextManager[Any]] | None = None,
    evaluated: bool = False,
    keep_evaluated: bool = False,
) -> Path:
    """Write `checkpoints/step_<step>` atomically and keep the newest `keep` whole. `model/` holds the model as it
    is; with `shipped` (a context in which the model holds the policy the run ships, its weight average), `model/`
    holds that policy and `last_iterate/` the weights as they are, which resume continues from. An `evaluated`
    checkpoint (taken at an evaluation step) that falls out of the newest `keep` is cut to its `model/` folder
    when `keep_evaluated`, and deleted otherwise, as every other old checkpoint is."""
    root = checkpoint_dir(run_dir)

    def fill(tmp: Path) -> None:
        if shipped is not None:
            model.save_pretrained(tmp / LAST_ITERATE)
            tokenizer.save_pretrained(tmp / LAST_ITERATE)
            with shipped():
                model.save_pretrained(tmp / "model")
            policies = {
                "model": "the policy the run ships and evaluates: the average of the weights over steps",
                LAST_ITERATE: "the weights as trained at this step, which --resume continues from",
            }
            (tmp / POLICY_FILE).write_text(json.dumps(policies, indent=1) + "\n")
        else:
            model.save_pretrained(tmp / "model")
        tokenizer.save_pretrained(tmp / "model")
        torch.save({**state, "step": step}, tmp / STATE_FILE)
        if evaluated:
            (tmp / EVALUATED_MARK).write_text(str(step))
        (tmp / COMPLETE_MARK).write_text(str(step))

    final = write_folder_atomically(root / f"step_{step:06d}", fill)
    write_atomic(root / "latest", final.name)
    _prune(root, keep, keep_evaluated)
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


class RunFolderError(ValueError):
    """A run folder that cannot be trained in as it is; the message is one line naming the file and the fix."""


class UnsafeCheckpoint(RunFolderError):
    """A checkpoint's `state.pt` holds more than tensors and plain data, so loading it could run code."""


class DamagedCheckpoint(RunFolderError):
    """A checkpoint file that is missing, cut short or not what `save_checkpoint` writes."""


def checkpoints_newest_first(run_dir: Path) -> list[Path]:
    """A run's complete checkpoints, the one `latest` names first, then the others from the newest."""
    first = latest_checkpoint(run_dir)
    root = checkpoint_dir(run_dir)
    complete = sorted((p for p in root.glob("step_*") if (p / COMPLETE_MARK).exists()), reverse=True)
    return ([first] if first is not None else []) + [p for p in complete if p != first]


def resume_point(run_dir: Path, load_model: Callable[[Path], T], log=print) -> tuple[Path, dict[str, Any], T] | None:
    """The newest intact checkpoint of `run_dir`: its folder, its checked state, and what `load_model` made of its
    trained weights (`trained_weights`). A damaged newer one is passed over with a one-line warning naming the
    damaged file; None when the run has no checkpoint; `DamagedCheckpoint` when every one is damaged,
    `UnsafeCheckpoint` at once for a state that could run code (a hostile folder is refused, not worked around)."""
    damaged: list[str] = []
    for checkpoint in checkpoints_newest_first(run_dir):
        trained = trained_weights(checkpoint)
        try:
            state = checked_state(checkpoint)
            for folder in dict.fromkeys((trained, checkpoint / "model")):  # the shipped policy too, where apart
                check_weights(folder)
            try:
                loaded = load_model(trained)
            except (OSError, ValueError, KeyError, EOFError, RuntimeError) as err:
                if isinstance(err, torch.OutOfMemoryError):
                    raise
                raise DamagedCheckpoint(f"{trained} does not load: {_first_line(err)}") from None
        except DamagedCheckpoint as err:
            damaged.append(str(err))
            log(f"warning: {err}; trying the checkpoint before it")
            continue
        if damaged:
            log(f"warning: resuming from {checkpoint.name}, the newest intact checkpoint")
        return checkpoint, state, loaded
    if damaged:
        raise DamagedCheckpoint(
            f"no intact checkpoint in {checkpoint_dir(run_dir)} ({damaged[0]}); restore it, or move the "
            "checkpoints folder away to start the run again from step 0"
        )
    return None


def trained_weights(checkpoint: Path) -> Path:
    """The checkpoint's folder of the weights training continues from: `last_iterate/` where the run shipped a
    weight average (`model/` holds the average then), else `model/`."""
    last = checkpoint / LAST_ITERATE
    return last if last.is_dir() else checkpoint / "model"


def checked_state(checkpoint: Path) -> dict[str, Any]:
    """`load_state`, checked to be what `save_checkpoint` wrote: every key of `STATE_KEYS`, the folder's step,
    and random states that restore; else `DamagedCheckpoint` naming the file."""
    path = checkpoint / STATE_FILE
    if not path.is_file():
        raise DamagedCheckpoint(f"{path} is missing")
    state = load_state(checkpoint)
    if not isinstance(state, dict):
        raise DamagedCheckpoint(f"{path} is damaged: it holds a {type(state).__name__}, not the training state")
    missing = [key for key in STATE_KEYS if key not in state]
    if missing:
        raise DamagedCheckpoint(f"{path} is damaged: it lacks {', '.join(missing)}")
    step = state["step"]
    if isinstance(step, bool) or not isinstance(step, int) or f"step_{step:06d}" != checkpoint.name:
        raise DamagedCheckpoint(f"{path} is damaged: its step {step!r} is not its folder's ({checkpoint.name})")
    for key in ("learner", "rae", "config"):
        if not isinstance(state[key], dict):
            raise DamagedCheckpoint(f"{path} is damaged: its {key} is a {type(state[key]).__name__}, not a dict")
    try:
        random.Random().setstate(state["rng"])
        torch.Generator().set_state(state["torch_global_rng"])
    except (TypeError, ValueError, RuntimeError) as err:
        raise DamagedCheckpoint(f"{path} is damaged: a random state does not restore ({_first_line(err)})") from None
    rng = state["torch_rng"]  # a CPU or a CUDA generator's state: the trainer's generator checks its own
    if not (isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8 and rng.dim() == 1 and rng.numel() > 0):
        raise DamagedCheckpoint(f"{path} is damaged: its torch_rng is not a generator state")
    return state


def check_weights(model_dir: Path) -> None:
    """`DamagedCheckpoint` naming the file when `model_dir` holds no `.safetensors` file, or one whose header does
    not parse or whose size is not what its header says (cut short, or other bytes). Reads headers only."""
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise DamagedCheckpoint(f"{model_dir} holds no .safetensors weights")
    for path in files:
        size = path.stat().st_size
        try:
            with open(path, "rb") as f:
                (length,) = struct.unpack("<Q", f.read(8))
                if length > size - 8:
                    raise ValueError(f"a {length}-byte header in a {size}-byte file")
                header = json.loads(f.read(length))
            ends = [t["data_offsets"][1] for name, t in header.items() if name != "__metadata__"]
        except (struct.error, ValueError, TypeError, KeyError, IndexError, AttributeError) as err:
            raise DamagedCheckpoint(f"{path} is damaged (not safetensors: {_first_line(err)})") from None
        if 8 + length + max(ends, default=0) != size:
            raise DamagedCheckpoint(f"{path} is damaged: {size} bytes where its header says {8 + length + max(ends)}")


def _first_line(err: BaseException) -> str:
    """The error's first line, or its first sentence where that line is long; its type's name where it says nothing."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    if "Unsupported operand" in str(err):  # torch's weights-only reader: the line that says what it met
        return next(line for line in lines if "Unsupported operand" in line)
    return lines[0].split(". ")[0] if len(lines[0]) > 120 else lines[0]


def load_state(checkpoint: Path) -> dict[str, Any]:
    """The training state of a checkpoint: tensors, numbers, strings, lists, tuples and dicts only.

    Loaded with `weights_only=True`, so a run folder from someone else cannot run code on `--resume` (a
    pickle names any callable to rebuild an object; this refuses every one that is not plain data).
    """
    path = checkpoint / STATE_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        if "Weights only load failed" not in str(err) or any("Unsupported operand" in line for line in lines):
            raise DamagedCheckpoint(f"{path} is damaged (not a checkpoint: {_first_line(err)})") from None
        reason = next((line for line in lines if "GLOBAL" in line), lines[0])
        raise UnsafeCheckpoint(
            f"{path} holds more than tensors and plain data, so it was not loaded (it could run code): {reason} "
            "A checkpoint that spiral-train wrote never does; resume only from run folders you trust"
        ) from None
    except Exception as err:  # cut short, empty, other bytes: torch's readers fail in many ways (IndexError, ...)
        raise DamagedCheckpoint(f"{path} is damaged (unreadable: {_first_line(err)})") from None


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


def _prune(root: Path, keep: int, keep_evaluated: bool = False) -> None:
    """Keep the newest `keep` complete checkpoints whole; cut older evaluated ones to `model/` (when
    `keep_evaluated`) and delete the rest. The COMPLETE mark goes first, so a crash mid-cut leaves a folder that
    resume passes over and whose `model/` is whole."""
    complete = sorted(p for p in root.glob("step_*") if (p / COMPLETE_MARK).exists())
    for old in complete[:-keep]:
        if keep_evaluated and (old / EVALUATED_MARK).exists():
            (old / POLICY_ONLY_MARK).write_text("model/ only: the policy evaluated at this step; not a resume point")
            (old / COMPLETE_MARK).unlink()
            for part in (STATE_FILE, LAST_ITERATE, POLICY_FILE, EVALUATED_MARK):
                path = old / part
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        else:
            shutil.rmtree(old, ignore_errors=True)
    for stray in root.glob(".tmp-*"):
        if not stray.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(stray, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
