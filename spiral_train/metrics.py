"""Where a run's figures go: metrics.jsonl always; TensorBoard and wandb when asked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def env_key(env_id: str) -> str:
    """An env id as one segment of a metric key, which splits on "/": a namespace's slash becomes a colon
    ("textarena/Nim-v0" -> "eval/textarena:Nim-v0/random/win_rate"); our own ids are unchanged."""
    return env_id.replace("/", ":")


def baseline_key(key: tuple[str, str, str]) -> str:
    """The metric of an RAE baseline (env id, role, opponent kind): `rae/baseline/<env>/<role>` in self-play (the
    name plots and the README use), else `.../<kind>`."""
    env_id, role, kind = key
    return f"rae/baseline/{env_key(env_id)}/{role}" + ("" if kind == "self" else f"/{kind}")


class MetricsLog:
    def __init__(self, run_dir: Path, config: dict[str, Any], tensorboard: bool, wandb: bool, project: str) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.transcripts = run_dir / "transcripts.jsonl"
        self._tb = None
        self._wandb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise RuntimeError("--tensorboard needs the tensorboard package: pip install tensorboard") from err
            self._tb = SummaryWriter(str(run_dir / "tensorboard"))
        if wandb:
            try:
                import wandb as wandb_module
            except ImportError as err:
                raise RuntimeError("--wandb needs the wandb package: pip install wandb") from err
            self._wandb = wandb_module.init(project=project, config=config, dir=str(run_dir), resume="allow")

    def log(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
        step = record["step"]
        numbers = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "step"}
        if self._tb is not None:
            for key, value in numbers.items():
                self._tb.add_scalar(key, value, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(numbers, step=step)

    def log_transcripts(self, step: int, games: list[dict[str, Any]]) -> None:
        with open(self.transcripts, "a") as f:
            for game in games:
                f.write(json.dumps({"step": step, **game}) + "\n")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


class MetricsError(ValueError):
    """A metrics.jsonl that does not read: the message names the file, the line and the fix."""


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of a run's metrics.jsonl, in order. A torn last line (a run killed mid-write: no newline
    after it) is left out; any other line that is not a JSON object raises `MetricsError` naming it."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: is {run_dir} a spiral-train run folder?")
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")  # the last item is "" when the file ends in a newline, else a torn write
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines):
                break  # torn by a kill; a resume cuts it off too
            raise MetricsError(f"{path}:{number}: not a JSON record ({err.msg}); delete that line") from None
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            raise MetricsError(f"{path}:{number}: not a metrics record (no integer step); delete that line")
        records.append(record)
    return records


def last_time_s(run_dir: Path) -> float:
    """The `time_s` of the last record of a run's metrics.jsonl, 0.0 when it has none: the seconds a resumed run
    had already trained, from which its clock continues (so `time_s` grows across resumes)."""
    try:
        records = read_metrics(run_dir)
    except FileNotFoundError:
        return 0.0
    return float(records[-1].get("time_s", 0.0)) if records else 0.0
