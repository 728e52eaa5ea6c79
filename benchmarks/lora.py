"""Step time and peak memory of full fine-tuning against LoRA, with and without gradient checkpointing.

Every combination trains a few real self-play steps (`Trainer.train_step`: collect, RAE, update) in its own
process, so each peak RSS is that configuration's alone; all run one after another in one invocation, on the
same models, so the ratios are side by side. Two models: the embedded tiny model (112k parameters) and a
randomly initialised Qwen3 of about 30M parameters (its moves are garbage, so every game ends at its first,
invalid, turn; the cost per token is what a real model of that shape costs).

    .venv/bin/python benchmarks/lora.py                      # CPU, 1 thread, both models, 4 configurations each
    .venv/bin/python benchmarks/lora.py --models tiny --rank 16
    .venv/bin/python benchmarks/lora.py --device cuda --models /path/to/model --games 64
    .venv/bin/python benchmarks/lora.py --speed              # compute time only, interleaved, one process

Reported per configuration: median wall seconds per step after one warm-up step (and its update part), CPU
seconds per step and per update of the process, peak RSS (ru_maxrss), peak RSS minus the RSS once the trainer
was built (what training adds), trainable parameters, and the checkpoint's size. Each configuration runs
under glibc's default allocator and with MALLOC_MMAP_THRESHOLD_=65536: under the default, freed large
blocks stay in the heap, and LoRA's many small tensors between them kept peak RSS *above* full fine-tuning's
here although LoRA holds fewer live bytes (its saved activations were smaller, and it has no weight gradients
or Adam moments); with a fixed threshold, large blocks go back to the OS on free and RSS follows live memory.
On a loaded machine the per-process times are noisy; `--speed` times compute alone, interleaved.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIG = {"hidden": 512, "layers": 8, "heads": 8, "kv_heads": 4}


def rss_mb() -> float:
    """Current resident set size of this process, from /proc (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def one(spec: dict) -> dict:
    """Run one configuration in this process and return its figures (called in a child process)."""
    import torch

    torch.set_num_threads(spec["threads"])
    from spiral_train.config import make_config
    from spiral_train.trainer import Trainer

    overrides = {
        "model": spec["model"],
        "device": spec["device"],
        "steps": spec["steps"],
        "games_per_step": spec["games"],
        "num_envs": spec["games"],
        "micro_batch_size": spec["micro_batch"],
        "eval_games": 0,
        "progress": False,
        "log_transcripts": 0,
        "save_every": 10_000,
        "lora_rank": spec["rank"] if spec["lora"] else 0,
        "gradient_checkpointing": spec["gc"],
    }
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(make_config("tiny-cpu", overrides), Path(run_dir), log=lambda *_: None)
        trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in trainer.model.parameters())
        built_rss = rss_mb()
        walls, updates, cpus, update_cpus = [], [], [], []
        update = trainer.learner.update

        def timed_update(turns):
            c0 = time.process_time()
            result = update(turns)
            update_cpus.append(time.process_time() - c0)
            return result

        trainer.learner.update = timed_update
        for _ in range(spec["steps"]):
            t0, c0 = time.perf_counter(), time.process_time()
            record = trainer.train_step()
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            updates.append(record["time/update_s"])
        t0 = time.perf_counter()
        checkpoint = trainer.save()
        save_s = time.perf_counter() - t0
        model_bytes = sum(p.stat().st_size for p in (checkpoint / "model").rglob("*") if p.is_file())
    out = {
        "step_s": statistics.median(walls[1:]),
        "update_s": statistics.median(updates[1:]),
        "cpu_s": statistics.median(cpus[1:]),
        "update_cpu_s": statistics.median(update_cpus[1:]),
        "peak_rss_mb": peak_rss_mb(),
        "train_rss_mb": peak_rss_mb() - built_rss,
        "trainable": trainable,
        "params": total,
        "ckpt_mb": model_bytes / 2**20,
        "save_s": save_s,
        "turns": record["train/samples"],
    }
    if spec["device"] == "cuda":
        out["gpu_peak_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def speed(model: str | None, name: str, args: argparse.Namespace) -> list[dict]:
    """Compute time only: all four configurations in one process, timed in turns on one fixed batch.

    On a shared machine the per-process wall times swing with other jobs' load; here every configuration
    repeats the same update (and the same generation call) in interleaved rounds, and the fastest round of
    each is kept, which is the least disturbed one.
    """
    import torch

    torch.set_num_threads(args.threads)
    from spiral_train.config import make_config
    from spiral_train.config.views import ModelSource
    from spiral_train.learner import Learner, LearnerSettings
    from spiral_train.models.loading import load_model
    from spiral_train.rollout.collector import Collector, ModelPolicy
    from spiral_train.rollout.generation import HFGenerator
    from spiral_train.rollout.records import LEARNER, Match

    device = torch.device(args.device)
    variants = {}
    for use_lora, gc in itertools.product((False, True), (False, True)):
        overrides = {"model": model, "micro_batch_size": args.micro_batch, "gradient_checkpointing": gc}
        config = make_config("tiny-cpu", {**overrides, "lora_rank": args.rank if use_lora else 0})
        net, tokenizer, _ = load_model(ModelSource.from_config(config), device, log=lambda *_: None)
        variants[(use_lora, gc)] = (
            Learner(net, LearnerSettings.from_config(config), device, tokenizer.pad_token_id),
            HFGenerator(net, tokenizer),
        )
    learner, generator = variants[(False, False)]
    policy = ModelPolicy(generator, tokenizer, "qwen3", 1.0, 8, torch.Generator().manual_seed(0))
    matches = [Match("KuhnPoker-v1", i, {"player_0": LEARNER, "player_1": LEARNER}) for i in range(args.games)]
    turns = [t for r in Collector(args.games).play(matches, {LEARNER: policy}, keep_transcripts=False) for t in r.turns]
    for i, turn in enumerate(turns):
        turn.advantage = 1.0 if i % 2 else -1.0
    prompts = [t.prompt_ids for t in turns]
    times: dict[tuple, dict[str, list[float]]] = {key: {"update": [], "generate": []} for key in variants}
    for _ in range(args.speed_rounds):
        for key, (learner, generator) in variants.items():
            t0 = time.perf_counter()
            learner.update(turns)
            times[key]["update"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            generator.generate(prompts, temperature=1.0, max_new_tokens=8, generator=torch.Generator().manual_seed(0))
            times[key]["generate"].append(time.perf_counter() - t0)
    rows = []
    for (use_lora, gc), t in times.items():
        mode = f"lora r{args.rank}" if use_lora else "full"
        rows.append({"model": name, "mode": mode, "gc": gc, "update_s": min(t["update"]), "gen_s": min(t["generate"])})
    print(f"\n{name}: {len(turns)} turns, fastest of {args.speed_rounds} interleaved rounds, {args.threads} thread(s)")
    print("| mode | grad ckpt | update s | generate s | update vs full | generate vs full |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        full = next(f for f in rows if f["mode"] == "full" and f["gc"] == r["gc"])
        print(
            f"| {r['mode']} | {'on' if r['gc'] else 'off'} | {r['update_s']:.2f} | {r['gen_s']:.2f} | "
            f"x{r['update_s'] / full['update_s']:.2f} | x{r['gen_s'] / full['gen_s']:.2f} |"
        )
    return rows


def build_big(folder: Path) -> str:
    subprocess.run(
        [
            sys.executable,
            str(HERE / "random_model.py"),
            "--out",
            str(folder),
            "--hidden",
            str(BIG["hidden"]),
            "--layers",
            str(BIG["layers"]),
            "--heads",
            str(BIG["heads"]),
            "--kv-heads",
            str(BIG["kv_heads"]),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny", "big"], help="tiny, big (random ~30M) or a folder")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="steps per configuration; the first is a warm-up")
    parser.add_argument("--games", type=int, default=16)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--mmap-threshold",
        type=int,
        nargs="+",
        default=[0, 65536],
        help="glibc MALLOC_MMAP_THRESHOLD_ values (bytes) to run every configuration under; 0 keeps glibc's dynamic "
        "default, under which freed large blocks stay in the heap and peak RSS overstates live memory",
    )
    parser.add_argument("--speed", action="store_true", help="only the interleaved compute-time comparison")
    parser.add_argument("--speed-rounds", type=int, default=3)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(json.loads(args.one))))
        return
    if args.speed:
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.models:
                model = None if name == "tiny" else build_big(Path(tmp) / "big") if name == "big" else name
                speed(model, name, args)
        return

    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name in args.models:
            model = None if name == "tiny" else build_big(Path(tmp) / "big") if name == "big" else name
            for mmap, gc, use_lora in itertools.product(args.mmap_threshold, (False, True), (False, True)):
                spec = {
                    "model": model,
                    "lora": use_lora,
                    "gc": gc,
                    "rank": args.rank,
                    "steps": args.steps,
                    "games": args.games,
                    "micro_batch": args.micro_batch,
                    "threads": args.threads,
                    "device": args.device,
                }
                env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
                if mmap:
                    env["MALLOC_MMAP_THRESHOLD_"] = str(mmap)
                command = [sys.executable, __file__, "--one", json.dumps(spec)]
                done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    sys.exit(done.stderr[-3000:])
                result = json.loads(done.stdout.strip().splitlines()[-1])
                mode = f"lora r{args.rank}" if use_lora else "full"
                rows.append({"model": name, "malloc": mmap, "mode": mode, "gc": gc, **result})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    report(rows, args)


def report(rows: list[dict], args: argparse.Namespace) -> None:
    print(
        f"\n{args.device}, {args.threads} thread(s), {args.games} games/step, micro-batch {args.micro_batch}, "
        f"median of {args.steps - 1} steps after a warm-up; malloc: MALLOC_MMAP_THRESHOLD_ (0: unset, glibc dynamic)\n"
    )
    columns = "model | malloc | mode | grad ckpt | trainable | step s | update s | CPU s/step | update CPU s"
    print(f"| {columns} | peak RSS MB | training adds MB | checkpoint MB |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        base_params = r["params"] - (r["trainable"] if r["mode"] != "full" else 0)
        print(
            f"| {r['model']} ({base_params / 1e6:.2f}M) | {r['malloc']} | {r['mode']} | {'on' if r['gc'] else 'off'} | "
            f"{r['trainable']:,} | {r['step_s']:.2f} | {r['update_s']:.2f} | {r['cpu_s']:.2f} | "
            f"{r['update_cpu_s']:.2f} | {r['peak_rss_mb']:.0f} | {r['train_rss_mb']:.0f} | {r['ckpt_mb']:.2f} |"
        )
    print("\nratios LoRA / full (same model, malloc setting and checkpointing):")
    for full in (r for r in rows if r["mode"] == "full"):
        lo = next(r for r in rows if r["mode"] != "full" and all(r[k] == full[k] for k in ("model", "gc", "malloc")))
        ratio = {k: lo[k] / max(full[k], 1e-9) for k in ("step_s", "update_s", "cpu_s", "update_cpu_s", "peak_rss_mb")}
        ratio["train_rss_mb"] = lo["train_rss_mb"] / max(full["train_rss_mb"], 1)
        print(
            f"  {full['model']}, malloc {full['malloc']}, grad ckpt {'on' if full['gc'] else 'off'}: "
            f"step x{ratio['step_s']:.2f}, update x{ratio['update_s']:.2f}, step CPU x{ratio['cpu_s']:.2f}, "
            f"update CPU x{ratio['update_cpu_s']:.2f}, peak RSS x{ratio['peak_rss_mb']:.2f}, "
            f"training RSS x{ratio['train_rss_mb']:.2f}"
        )


if __name__ == "__main__":
    main()
