"""The rehearsal at real shapes (issue 26, item 8): the paper preset on a random Qwen3-0.6B in a hub-like folder, on
this CPU, in four configurations, with wall time, peak memory against the memory plan, and the learner's speed
against a bare forward and backward of the same model on the same tokens.

    python benchmarks/rehearsal.py --out-dir /tmp/rehearsal                       # the real 0.6B shape: a quiet machine
    python benchmarks/rehearsal.py --out-dir /tmp/r --hidden 128 --layers 2 --heads 4 --configs hf   # a quick try

Each configuration is one `spiral-train --preset paper-qwen3-4b --model DIR --device cpu` subprocess with the
lengths cut (`--games` games a step, one turn each from a random model, `--max-new-tokens` tokens an answer,
two steps, a small evaluation at steps 0 and 2):

- `hf`: transformers sampling, one process;
- `vllm`: vLLM's CPU build in the same process (`--vllm-max-model-len` cut so its KV cache fits);
- `lora`: transformers sampling, LoRA rank 16;
- `ray`: 2 Ray rollout workers (transformers) and 2 FSDP learner ranks;
- `ray-lora`: the same with LoRA rank 16.

Memory: the subprocess tree is sampled every `--sample-s` seconds with psutil (per process RSS, and the sum of
PSS, which counts a page shared by several processes once), and `getrusage(RUSAGE_CHILDREN)` of a wrapper
process gives the exact RSS high-water mark of its largest descendant. The plan is
`spiral_train.plan.plan_run(config, devices="cpu:24GB")` of the same options, imported lazily ("plan
unavailable" where it is missing). The learner's tokens/s is the run's (prompt + response tokens of the
trained turns, times the PPO epochs, over `time/update_s`, from metrics.jsonl; the second step, warm); the
bare figure is a forward (logits of the answer positions only, as the learner asks) and backward of the same
model, fp32, with gradient checkpointing (and LoRA) as the run has them, on random ids of the same rows and
lengths (no padding), in micro-batches of the same size, in its own process with the same threads; its
gradient clipping and AdamW steps, which the learner's time includes, are timed apart (`clip_and_adamw_s`).

Writes `rehearsal.json` and `rehearsal.md` (a table for docs/scaling.md) into `--out-dir`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("hf", "vllm", "lora", "ray", "ray-lora")
WRAPPER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.call(sys.argv[1:])\n"
    "print('RUSAGE_CHILDREN_MAXRSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, flush=True)\n"
    "sys.exit(rc)\n"
)


def overrides(name: str, model: Path, run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The options of configuration `name` on top of the paper preset (the same dict gives the plan its config)."""
    common: dict[str, Any] = {
        "model": str(model),
        "device": "cpu",
        "steps": 2,
        "games_per_step": args.games,
        "num_envs": args.games,
        "generation_batch_size": args.games,
        "max_new_tokens": args.max_new_tokens,
        "micro_batch_size": 4,
        "eval_every": 2,
        "eval_games": 2,
        "eval_opponents": ["random"],
        "eval_probe_samples": 0,
        "log_transcripts": 1,
        "progress": False,
        "run_dir": str(run_dir),
        "generator": "hf",
        "ray_workers": 0,
        "ray_learners": 1,
        "ray_learner_strategy": "ddp",
        "lora_rank": 0,
    }
    if name == "vllm":
        common.update(generator="vllm", vllm_max_model_len=args.vllm_max_model_len)
    elif name == "lora":
        common.update(lora_rank=16)
    elif name.startswith("ray"):  # the preset's GPU requests dropped: a CPU cluster has none
        common.update(ray_workers=2, ray_learners=2, ray_learner_strategy="fsdp", ray_worker_gpus=0, ray_learner_gpus=0)
        if name == "ray-lora":  # what the plan offers where "ray" does not fit (five fp32 copies on 24 GB do not)
            common.update(lora_rank=16)
    return common


def to_argv(options: dict[str, Any]) -> list[str]:
    """`spiral-train` flags for `options` (values as YAML scalars and lists)."""
    argv = ["--preset", "paper-qwen3-4b"]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + key.replace("_", "-"))
        elif isinstance(value, list):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv


def plan(options: dict[str, Any]) -> dict[str, Any]:
    try:
        from spiral_train.config import make_config
        from spiral_train.plan import plan_run

        memory_plan = plan_run(make_config("paper-qwen3-4b", options), devices="cpu:24GB")
        return {
            "update_peak_gib": round(memory_plan.update_peak_bytes(device=0) / 2**30, 3),
            "table": str(memory_plan)[:4000],
        }
    except Exception as err:  # the plan is another change; its absence is a result
        return {"plan": f"plan unavailable: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"}


class TreeSampler:
    """Samples the memory of a process and all its descendants until stopped."""

    def __init__(self, pid: int, every: float) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.every = every
        self.peak_rss_sum = 0
        self.peak_pss_sum = 0
        self.per_process: dict[int, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                break
            rss_sum = pss_sum = 0
            for proc in procs:
                try:
                    info = proc.memory_full_info()
                    cmdline = proc.cmdline()
                    wrapper = cmdline[2:3] == [WRAPPER]
                    name = "rehearsal wrapper" if wrapper else " ".join(cmdline[:4]).replace("\n", " ")[:100]
                except psutil.Error:
                    continue
                rss_sum += info.rss
                pss_sum += getattr(info, "pss", info.rss)
                seen = self.per_process.setdefault(proc.pid, {"name": name, "peak_rss": 0})
                seen["name"] = name  # Ray renames its workers' processes once they hold an actor
                seen["peak_rss"] = max(seen["peak_rss"], info.rss)
            self.peak_rss_sum = max(self.peak_rss_sum, rss_sum)
            self.peak_pss_sum = max(self.peak_pss_sum, pss_sum)
            self._stop.wait(self.every)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        top = sorted(self.per_process.values(), key=lambda p: -p["peak_rss"])[:8]
        return {
            "peak_rss_sum_gib": round(self.peak_rss_sum / 2**30, 3),
            "peak_pss_sum_gib": round(self.peak_pss_sum / 2**30, 3),
            "largest_processes": [{"name": p["name"], "peak_rss_gib": round(p["peak_rss"] / 2**30, 3)} for p in top],
        }


def environment(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), PYTHONPATH=f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}")
    return env


def run_config(name: str, model: Path, args: argparse.Namespace) -> dict[str, Any]:
    run_dir = args.out_dir / "runs" / name
    options = overrides(name, model, run_dir, args)
    cmd = [sys.executable, "-c", WRAPPER, sys.executable, "-m", "spiral_train.cli", *to_argv(options)]
    log = args.out_dir / f"{name}.log"
    print(f"[rehearsal] {name}: {' '.join(to_argv(options))}", flush=True)
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=environment(args.threads), cwd=ROOT)
        sampler = TreeSampler(proc.pid, args.sample_s)
        try:
            rc = proc.wait(timeout=args.timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = "timeout"
        memory = sampler.stop()
    record: dict[str, Any] = {"config": name, "rc": rc, "wall_s": round(time.monotonic() - started, 1), **memory}
    text = log.read_text(errors="replace")
    for line in text.splitlines():
        if line.startswith("RUSAGE_CHILDREN_MAXRSS_KB"):
            record["max_rss_largest_child_gib"] = round(int(line.split()[1]) / 2**20, 3)
    if rc != 0:
        record["log_tail"] = text[-3000:]
    record.update(plan(options))
    record.update(learner_speed(run_dir))
    if "learner_tokens" in record:
        record["bare"] = bare_in_subprocess(model, record, options, args)
        bare = record["bare"].get("tokens_per_s")
        if bare:
            record["learner_over_bare"] = round(record["learner_tokens_per_s"] / bare, 3)
    if not args.keep_checkpoints:  # a 0.6B checkpoint with its Adam state is ~7 GB
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return record


def learner_speed(run_dir: Path) -> dict[str, Any]:
    """The learner's tokens/s at the last step of the run's metrics, with the shapes the bare pass repeats."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return {}
    steps = [r for r in map(json.loads, path.read_text().splitlines()) if "time/update_s" in r]
    if not steps:
        return {}
    last = steps[-1]
    rows = int(last["train/samples"])
    prompt, response = round(last["train/prompt_len"]), round(last["train/response_len"])
    epochs = int(_saved_config(run_dir).get("num_epochs", 2))
    tokens = rows * (prompt + response) * epochs
    return {
        "learner_rows": rows,
        "learner_prompt_len": prompt,
        "learner_response_len": response,
        "learner_epochs": epochs,
        "learner_tokens": tokens,
        "update_s": round(last["time/update_s"], 2),
        "update_s_by_step": [round(r["time/update_s"], 2) for r in steps],
        "step_s_by_step": [round(r["time/step_s"], 2) for r in steps],
        "learner_tokens_per_s": round(tokens / last["time/update_s"], 1),
    }


def _saved_config(run_dir: Path) -> dict[str, Any]:
    import yaml

    path = run_dir / "config.yaml"
    return yaml.safe_load(path.read_text()) if path.exists() else {}


def bare_in_subprocess(model: Path, record: dict[str, Any], options: dict[str, Any], args) -> dict[str, Any]:
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--bare", str(model),
        "--rows", str(record["learner_rows"]), "--prompt", str(record["learner_prompt_len"]),
        "--response", str(record["learner_response_len"]), "--epochs", str(record["learner_epochs"]),
        "--micro", str(options["micro_batch_size"]), "--lora-rank", str(options["lora_rank"]),
        "--threads", str(args.threads),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=environment(args.threads), cwd=ROOT)
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def bare(args: argparse.Namespace) -> dict[str, Any]:
    """A forward and backward of the model on random ids of the run's shapes (see the module docstring)."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(args.bare, dtype=torch.float32)
    model.gradient_checkpointing_enable()
    model.config.use_cache = False
    if args.lora_rank:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model, LoraConfig(r=args.lora_rank, lora_alpha=32.0, target_modules="all-linear", task_type="CAUSAL_LM")
        )
    model.train()
    ids = torch.randint(0, 151_643, (args.rows, args.prompt + args.response))

    def micro_batch(rows: torch.Tensor) -> None:
        logits = model(input_ids=rows, logits_to_keep=args.response + 1).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), rows[:, -args.response :].flatten())
        loss.backward()

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-6, betas=(0.9, 0.95), weight_decay=0.0)
    micro_batch(ids[: min(args.micro, args.rows)])  # warm-up, as the learner's figure is its second step
    optimizer.step()  # Adam's state exists from then on, as in the learner's second step
    optimizer.zero_grad(set_to_none=True)
    forward_backward = optimizer_s = 0.0
    for _ in range(args.epochs):
        started = time.monotonic()
        for start in range(0, args.rows, args.micro):
            micro_batch(ids[start : start + args.micro])
        forward_backward += time.monotonic() - started
        started = time.monotonic()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        optimizer_s += time.monotonic() - started
    tokens = args.rows * (args.prompt + args.response) * args.epochs
    return {
        "seconds": round(forward_backward, 2),
        "tokens": tokens,
        "tokens_per_s": round(tokens / forward_backward, 1),
        "clip_and_adamw_s": round(optimizer_s, 2),
    }


def table(records: list[dict[str, Any]], shape: str) -> str:
    lines = [
        f"Rehearsal of `--preset paper-qwen3-4b` on {shape}, CPU (`benchmarks/rehearsal.py`).",
        "",
        "| config | rc | wall s | largest process peak RSS GiB | tree peak PSS GiB | plan update peak GiB "
        "| learner tokens/s | bare f+b tokens/s | learner / bare |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        sampled = [p["peak_rss_gib"] for p in r.get("largest_processes", [])]  # Ray actors: only sampled
        largest = max([*sampled, r.get("max_rss_largest_child_gib") or 0.0], default=None)
        planned = r.get("update_peak_gib", "n/a")
        lines.append(
            f"| {r['config']} | {r['rc']} | {r['wall_s']} | {largest} | {r.get('peak_pss_sum_gib')} | {planned} | "
            f"{r.get('learner_tokens_per_s', 'n/a')} | {r.get('bare', {}).get('tokens_per_s', 'n/a')} | "
            f"{r.get('learner_over_bare', 'n/a')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/rehearsal"))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--shape", default="Qwen3-0.6B")
    parser.add_argument("--hidden", type=int, help="scale the width down, for a quick try of the harness")
    parser.add_argument("--layers", type=int)
    parser.add_argument("--heads", type=int)
    parser.add_argument("--games", type=int, default=4, help="games a step (one turn each from a random model)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--vllm-max-model-len", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of each run")
    parser.add_argument("--timeout-s", type=float, default=1800)
    parser.add_argument("--sample-s", type=float, default=1.0)
    parser.add_argument("--keep-checkpoints", action="store_true")
    parser.add_argument("--bare", help=argparse.SUPPRESS)  # the bare pass, in its own process
    for name in ("--rows", "--prompt", "--response", "--epochs", "--micro", "--lora-rank"):
        parser.add_argument(name, type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare:
        print(json.dumps(bare(args)))
        return 0
    sys.path.insert(0, str(ROOT))
    from spiral_train.models import random_model

    args.out_dir.mkdir(parents=True, exist_ok=True)
    model = args.out_dir / "model"
    shape_overrides = {
        k: v for k, v in {"hidden": args.hidden, "layers": args.layers, "heads": args.heads}.items() if v
    }
    wanted = random_model.model_config(args.shape, **shape_overrides)
    built = json.loads((model / "config.json").read_text()) if (model / "config.json").exists() else None
    if built != wanted or not (model / "model.safetensors").exists():
        shutil.rmtree(model, ignore_errors=True)
        started = time.monotonic()
        random_model.build(model, args.shape, **shape_overrides)
        print(f"[rehearsal] built {model} in {time.monotonic() - started:.0f} s", flush=True)
    shape = args.shape + (f" scaled to {shape_overrides}" if shape_overrides else "")
    records = []
    for name in args.configs:
        records.append(run_config(name, model, args))
        print(
            f"[rehearsal] {name}: {json.dumps({k: v for k, v in records[-1].items() if k != 'log_tail'})}", flush=True
        )
        (args.out_dir / "rehearsal.json").write_text(json.dumps({"shape": shape, "runs": records}, indent=1) + "\n")
    (args.out_dir / "rehearsal.md").write_text(table(records, shape))
    print(table(records, shape))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
