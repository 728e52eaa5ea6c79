"""The memory plan against the measured peak of one real `Learner.update`, on CPU, for random Qwen3 models.

For each case: a random Qwen3 (tied embeddings) saved to a temporary folder, synthetic turns (padded
micro-batches, two or more of them), a first update (so AdamW's moments exist), then the measured update's
peak of live tensor bytes (`spiral_train.plan.storage_peak.StoragePeak`) against `plan_run(...)
.update_peak_bytes()`. The `bf16*` cases run the learner under CPU bf16 autocast (the learner only autocasts on
CUDA, so it is patched here) against the plan's CUDA autocast model: a stand-in until a GPU measures it.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/plan_accuracy.py            # ~25 min, < 4 GB
    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/plan_accuracy.py --quick    # ~1 min
    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/plan_accuracy.py --activations  # ~5 min, 5 GB
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time

import torch

from spiral_train import learner as learner_module
from spiral_train.plan import plan_run
from spiral_train.plan.calibration import calibration_config, measured_update_peak, random_qwen3, synthetic_turns
from spiral_train.plan.memory import LEARNER_ROWS, LearnerSetup, update_peak
from spiral_train.plan.workload import workload

SIZES = [(256, 4, 151936), (512, 4, 151936), (1024, 4, 32768)]
"""(hidden, layers, vocabulary): the real Qwen3 vocabulary where the head stays under ~1 GB in fp32."""
QUICK_SIZES = [(256, 2, 151936), (512, 2, 32768), (1024, 2, 8192)]
ACTIVATIONS = (1024, 8, 8192, 8, 400, 112, ("full", "full+ckpt"))
"""`--activations`: 8 layers and 8 x 512 tokens a micro-batch, where activations outweigh weights and logits
(5 GB without checkpointing)."""
VARIANTS = {
    "full": {},
    "full+ckpt": {"gradient_checkpointing": True},
    "lora8": {"lora_rank": 8},
    "lora8+ckpt": {"lora_rank": 8, "gradient_checkpointing": True},
    "full+kl": {"kl_coef": 0.1},
    "bf16+ckpt": {"gradient_checkpointing": True, "bf16": True},
    "bf16": {"bf16": True},
}


@contextlib.contextmanager
def cpu_autocast(enabled: bool):
    """The learner's `autocast` made to run bf16 autocast on CPU (it only does on CUDA)."""
    original = learner_module.autocast
    if enabled:
        learner_module.autocast = lambda device, bf16: torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    try:
        yield
    finally:
        learner_module.autocast = original


def run_case(hidden: int, layers: int, vocab: int, variant: str, batch: int, prompt: int, answer: int) -> dict:
    options = VARIANTS[variant]
    with tempfile.TemporaryDirectory() as folder:
        random_qwen3(folder, hidden, layers, vocab)
        config = calibration_config(folder, batch, prompt, answer, **options)
        turns = synthetic_turns(3 * batch, prompt, answer, vocab)
        started = time.time()
        with cpu_autocast(config.bf16):
            measured = measured_update_peak(config, turns)
        plan = plan_run(config, "cpu:64GB")
        planned = plan.update_peak_bytes(0)
        moment = next(c for c in plan.devices[0].columns if c.learner_update).note
        if config.bf16:  # the plan's CUDA autocast model, with CPU AdamW
            setup = LearnerSetup(autocast=True, checkpointing=config.gradient_checkpointing, reference=0, cuda=False)
            peak = update_peak(plan.shape, workload(config), setup)
            planned = sum(v for k, v in peak.rows.items() if k in LEARNER_ROWS)
            moment = f"peak: {peak.name}"
    return {
        "hidden": hidden,
        "layers": layers,
        "vocab": vocab,
        "variant": variant,
        "tokens": batch * (prompt + answer),
        "params_m": round(plan.shape.params / 1e6, 1),
        "measured_mib": round(measured / 2**20, 1),
        "planned_mib": round(planned / 2**20, 1),
        "error": round((planned - measured) / measured, 4),
        "moment": moment,
        "seconds": round(time.time() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two layers, smaller vocabularies and batches")
    parser.add_argument("--activations", action="store_true", help="only the activation-heavy case (~5 min, 5 GB)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    batch, prompt, answer = (4, 40, 24) if args.quick else (8, 120, 136)
    cases = [(*size, batch, prompt, answer, tuple(args.variants)) for size in (QUICK_SIZES if args.quick else SIZES)]
    if args.activations:
        cases = [ACTIVATIONS]
    rows = []
    for hidden, layers, vocab, batch, prompt, answer, variants in cases:
        for variant in variants:
            row = run_case(hidden, layers, vocab, variant, batch, prompt, answer)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(
        "\n| hidden | layers | vocab | case | tokens/micro-batch | measured MiB | planned MiB | error | peak moment |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['hidden']} | {r['layers']} | {r['vocab']:,} | {r['variant']} | {r['tokens']:,} | "
            f"{r['measured_mib']:,} | {r['planned_mib']:,} | {r['error']:+.1%} | {r['moment'].removeprefix('peak: ')} |"
        )
    worst = max(abs(r["error"]) for r in rows)
    print(f"\nworst |error|: {worst:.1%}")


if __name__ == "__main__":
    main()
