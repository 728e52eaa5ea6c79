"""A run's memory plan as data and as the table `spiral-train plan` prints; the options that would make it fit."""

from __future__ import annotations

from dataclasses import dataclass, field

from spiral_train.plan.devices import Devices
from spiral_train.plan.memory import LEARNER_ROWS, ROWS
from spiral_train.plan.placement import DevicePlan
from spiral_train.plan.shapes import ModelShape
from spiral_train.plan.workload import Workload

ROW_NOTES = {
    "weights": "fp32 master weights (a frozen LoRA base: fp32 as loaded); FSDP: a 1/N shard + gathered blocks",
    "gradients": "fp32, of what trains; freed after each optimizer step",
    "optimizer state": "AdamW's two fp32 moments of what trains",
    "reference model": "the frozen KL anchor (kl_coef > 0 without LoRA): bf16 with bf16 on CUDA, else fp32",
    "bf16 weight copies": "autocast's casts of the Linear weights",
    "activations": "saved for backward (with checkpointing: a hidden state per layer + one layer recomputed)",
    "logits": "logits_to_keep = answer + 1 positions per row, in the compute dtype, and their gradient",
    "temporaries": "token_logprobs chunks, head/embedding gradients, AdamW step, ddp's flat gradients",
    "engine weights": "vLLM's copy: bf16 on a GPU with bf16, else fp32",
    "KV cache": "vLLM: utilization x the GPU less its weights, or --vllm-kv-cache-mb; transformers: every layer",
    "merged LoRA weights": "one process: the fp32 merged layer (and its delta) handed to vLLM at each weight sync, "
    "one at a time; Ray: the driver's whole merged state dict for the workers",
    "object store": "Ray: the weights the driver sends the workers, one copy in shared memory per update",
    "opponent model": "a frozen fp32 copy: the opponent pool's snapshot, or a checkpoint opponent",
    "policy average": "one process: the EMA of the trained weights the run ships (policy_average), fp32",
    "runtime": "per process: CUDA context and the interpreter (estimate)",
}


@dataclass
class Fix:
    """Options that make a refused run fit, checked by planning again with them."""

    flags: str
    peak: int
    """The largest device total with these options."""
    capacity: int


@dataclass
class MemoryPlan:
    """A run's plan: `devices` (per-device rows as plain data), whether it `fits`, and how it was worked out."""

    model: str
    """What the shapes were read from."""
    shape: ModelShape
    work: Workload
    available: Devices
    devices: list[DevicePlan]
    problems: list[str] = field(default_factory=list)
    """Run-wide reasons it cannot work (Ray asked for more GPUs than there are)."""
    fixes: list[Fix] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return not self.problems and all(d.fits for d in self.devices)

    def update_peak_bytes(self, device: int = 0) -> int:
        """The learner update's peak on `device`: its own tensors only (weights, gradients, AdamW state,
        reference, bf16 copies, activations, logits, temporaries; no engine, no runtime), i.e. what
        `torch.cuda.max_memory_allocated` shows for one `Learner.update` after a first one (AdamW's moments
        exist), or `storage_peak.StoragePeak` on CPU."""
        plan = self.devices[device]
        for column in plan.columns:
            if column.learner_update:
                return sum(v for k, v in column.rows.items() if k in LEARNER_ROWS)
        raise ValueError(f"device {device} holds no learner ({'; '.join(plan.holders) or 'nothing'})")

    def rows(self, device: int = 0) -> list[dict[str, object]]:
        """Device `device`'s columns as plain records: process, phase, note, rows (name -> bytes), total."""
        return [
            {"process": c.process, "phase": c.phase, "note": c.note, "rows": dict(c.rows), "total": c.total}
            for c in self.devices[device].columns
        ]

    def table(self) -> str:
        lines = [
            f"memory plan for {self.available.describe()} ({self.available.source})",
            f"  model: {self.shape.describe()}; shapes from {self.model}",
            f"  {self.work.describe()}",
        ]
        for group in _groups(self.devices):
            lines.append("")
            lines.extend(_device_lines(group))
        for problem in self.problems:
            lines.append(f"  problem: {problem}")
        lines.append("")
        if self.fits:
            lines.append("verdict: fits")
        else:
            lines.append("verdict: does NOT fit")
            if self.fixes:
                lines.append("options that make it fit (each planned again):")
                lines.extend(f"  {fix.flags}   (peak {_gb(fix.peak)} of {_gb(fix.capacity)})" for fix in self.fixes)
            else:
                lines.append(
                    "no option tried makes it fit (LoRA, checkpointing, smaller micro-batches, Ray layouts, less vLLM)"
                )
        used = {k for d in self.devices for c in d.columns for k, v in c.rows.items() if v}
        lines.append("rows:")
        lines.extend(f"  {k}: {v}" for k, v in ROW_NOTES.items() if k in used)
        return "\n".join(lines)


def _groups(devices: list[DevicePlan]) -> list[list[DevicePlan]]:
    """Consecutive devices with the same content, shown once."""
    groups: list[list[DevicePlan]] = []
    for plan in devices:
        if groups and _signature(groups[-1][0]) == _signature(plan):
            groups[-1].append(plan)
        else:
            groups.append([plan])
    return groups


def _signature(plan: DevicePlan) -> tuple:
    return (
        [h.split(" (")[0].rstrip("0123456789 ") for h in plan.holders],
        [(c.phase, sorted(c.rows.items())) for c in plan.columns],
        plan.problems,
    )


def _device_lines(group: list[DevicePlan]) -> list[str]:
    first = group[0]
    which = f"device {first.index}" if len(group) == 1 else f"devices {first.index}-{group[-1].index}"
    holders = "; ".join(first.holders) if len(group) == 1 else _holders_of_group(group)
    lines = [f"{which} ({first.kind}, {_gb(first.capacity)}): {holders or 'nothing'}"]
    if not first.columns:
        return lines
    headers = [
        f"{c.phase}" if len({x.process for x in first.columns}) == 1 else f"{_short(c.process)}: {c.phase}"
        for c in first.columns
    ]
    width = max(12, *(len(h) for h in headers))
    lines.append("  " + " " * 22 + "".join(h.rjust(width + 2) for h in headers))
    for row in ROWS:
        if not any(c.rows.get(row) for c in first.columns):
            continue
        cells = "".join((_gb(c.rows[row]) if c.rows.get(row) else "-").rjust(width + 2) for c in first.columns)
        lines.append(f"  {row:<22}{cells}")
    lines.append(f"  {'total':<22}" + "".join(_gb(c.total).rjust(width + 2) for c in first.columns))
    lines.extend(f"  ({h}: {c.note})" for h, c in zip(headers, first.columns) if c.note)
    share = first.total / first.capacity
    verdict = "fits" if first.fits else "does NOT fit"
    each = " each" if len(group) > 1 else ""
    lines.append(f"  device peak{each}: {_gb(first.total)} of {_gb(first.capacity)} ({share:.0%}): {verdict}")
    lines.extend(f"  problem: {p}" for p in first.problems)
    return lines


def _holders_of_group(group: list[DevicePlan]) -> str:
    names = [h for plan in group for h in plan.holders]
    if len(names) == len(group) and names:
        return f"{names[0]} ... {names[-1]}, one per device"
    return "; ".join(names)


def _short(process: str) -> str:
    return process.split(" (")[0]


def _gb(value: int) -> str:
    """Bytes for the table: GB (10^9) from 1 GB, else MB."""
    if abs(value) >= 1e10:
        return f"{value / 1e9:.1f} GB"
    if abs(value) >= 1e9:
        return f"{value / 1e9:.2f} GB"
    return f"{value / 1e6:.1f} MB"
