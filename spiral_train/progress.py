"""The progress bar of a run: one line with an estimate, and a summary of each step's record after it."""

from __future__ import annotations

from typing import Any


def progress_postfix(record: dict[str, Any]) -> str:
    """The progress bar's summary of a step's record: invalid share, loss, where the step's time went, and the
    latest evaluation's win rates."""
    parts = []
    if "train/reward_mean" in record:
        parts.append(f"invalid {record['train/invalid_rate']:.0%}")
        parts.append(f"loss {record['loss']:+.3f}")
    step, generation = record.get("time/step_s"), record.get("time/generation_s")
    if step and generation is not None:  # where the step went (Ray workers' sampling is not split out)
        update = record["time/update_s"]
        other = 1 - (generation + update) / step
        parts.append(f"time: gen {generation / step:.0%} upd {update / step:.0%} other {other:.0%}")
    for key, value in record.items():
        if key.startswith("eval/") and key.endswith("/win_rate"):
            _, env_id, opponent, _ = key.split("/")
            parts.append(f"{env_id.split('-')[0]} vs {opponent} {value:.0%}")
    return " | ".join(parts)


def progress_bar(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc="spiral-train", unit="step", dynamic_ncols=True)
