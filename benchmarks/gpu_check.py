"""The GPU check of issue 26: what only a GPU can tell, measured in one go of under 10 minutes, written as JSON.

    python benchmarks/gpu_check.py --out gpu_check.json            # a CUDA machine: torch, transformers, peft
    python benchmarks/gpu_check.py --dry-run --out /tmp/dry.json    # any CPU, in seconds: tiny shapes, same code
    python benchmarks/gpu_check.py --attach-plan gpu_check.json     # later, where spiral_train.plan imports

Four sections, each a function that records its figures, or its error, and lets the next one run:

- `update_memory`: peak GPU memory (`torch.cuda.max_memory_allocated`) of one `Learner.update` (two PPO epochs,
  micro-batches of the paper preset's size and answer length, random token ids standing in for turns) for
  random Qwen3-0.6B- and Qwen3-4B-shaped models, fp32 master weights under bf16 autocast, gradient checkpointing,
  against the memory plan (`spiral_train.plan.plan_run(config, devices).update_peak_bytes(device=0)`) where it
  imports. 4B full fine-tuning is tried, and where it runs out of memory that is recorded and LoRA (rank 16) is
  measured instead.
- `dlogp`: the sampler-learner mismatch of a bf16 sampler: answers sampled by the transformers backend
  (`HFGenerator`) from a pure bf16 copy of a 0.6B-shaped model (what vLLM computes), their logprobs recomputed on
  the learner's path (fp32 weights under bf16 autocast, `learner.response_logprobs`); mean and max |dlogp| and
  the share above 0.1 and 1.0, for the random init and for a copy with logits sharpened 8x (a random model's
  next-token distribution is near uniform; a trained one's is peaked). The same for `--generator hf`'s own
  sampling (the fp32 model under autocast, decoding with a KV cache, against the learner's one full pass).
- `token_logprobs`: time and peak memory of `token_logprobs` (forward and backward) on one micro-batch of bf16
  logits at Qwen3's vocabulary, by chunk size (`spiral_train.token_logprobs.CHUNK_ELEMENTS`, or its
  `chunk_elements` argument where it has one), with a full `log_softmax` for reference.
- `generation`: transformers tokens/s on the 0.6B shape in bf16, batch 64, 256 new tokens: `generate` with the
  dynamic cache, with a static cache, with a static cache compiled by transformers (`torch.compile`, mode
  "reduce-overhead": CUDA graphs), and the project's own sampler (`HFGenerator`, eager).

It needs no vLLM, Ray, pettingzoo or network: `spiral_train.learner` and the samplers import none of the games
(the package's names are imported on first use). The memory plan does (a `TrainConfig` is checked against the
games), so where pettingzoo is missing the plan is attached afterwards on a CPU machine (`--attach-plan`).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import importlib.util
import json
import math
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GAME_PACKAGES = ("pettingzoo", "gymnasium")
FORBIDDEN = ("spiral_envs", "pettingzoo", "gymnasium", "vllm", "ray")
"""Top-level packages the check must not import (recorded at the end as "imported_forbidden")."""
PAD = 151_643
"""Qwen3's `<|endoftext|>`: eos and pad of the Base models."""
PRESET_LEARNER = {
    "lr": 1e-6,
    "adam_betas": (0.9, 0.95),
    "weight_decay": 0.0,
    "lr_schedule": "constant",
    "warmup_steps": 0,
    "steps": 400,
    "num_epochs": 2,
    "micro_batch_size": 4,
    "clip_eps": 0.2,
    "kl_coef": 0.0,
    "loss_aggregation": "seq_sum_const",
    "max_grad_norm": 1.0,
    "max_new_tokens": 4096,
    "temperature": 1.0,
    "top_k": 0,
    "top_p": 1.0,
    "bf16": True,
    "seed": 0,
}
"""`LearnerSettings` of the paper preset (`tests/benchmarks/test_gpu_check.py` checks them against
`config.PRESETS`); the preset also turns gradient checkpointing on."""


@dataclass(frozen=True)
class Sizes:
    """What each section runs at: the GPU sizes, or tiny ones for `--dry-run` (same code path)."""

    shapes: dict[str, dict[str, int]]
    """Qwen3 shape name -> `random_model.model_config` overrides (none: the real shape)."""
    prompt_tokens: int
    response_tokens: int
    lora_rank: int
    sample_batch: int
    sample_prompt: int
    sample_new: int
    logprob_rows: int
    logprob_positions: int
    chunk_sizes: tuple[int, ...]
    gen_batch: int
    gen_prompt: int
    gen_new: int
    repeats: int


GPU = Sizes(
    shapes={"Qwen3-0.6B": {}, "Qwen3-4B": {}},
    prompt_tokens=256,
    response_tokens=4096,
    lora_rank=16,
    sample_batch=64,
    sample_prompt=320,
    sample_new=256,
    logprob_rows=4,
    logprob_positions=4097,
    chunk_sizes=(1 << 22, 1 << 24, 1 << 26, 1 << 28),
    gen_batch=64,
    gen_prompt=128,
    gen_new=256,
    repeats=2,
)
DRY = Sizes(
    shapes={"Qwen3-0.6B": {"hidden": 64, "layers": 2, "heads": 2}, "Qwen3-4B": {"hidden": 64, "layers": 2, "heads": 2}},
    prompt_tokens=8,
    response_tokens=16,
    lora_rank=4,
    sample_batch=4,
    sample_prompt=8,
    sample_new=8,
    logprob_rows=2,
    logprob_positions=33,
    chunk_sizes=(1 << 22, 1 << 24),
    gen_batch=4,
    gen_prompt=8,
    gen_new=8,
    repeats=1,
)


# -- imports without the games --------------------------------------------------------------------------------


def import_spiral_train() -> dict[str, Any]:
    """Import `spiral_train.learner` (and what it needs: the samplers, `token_logprobs`), which need neither the
    games nor pettingzoo; return how, for the JSON."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    importlib.import_module("spiral_train.learner")
    missing = [name for name in GAME_PACKAGES if importlib.util.find_spec(name) is None]
    return {"mode": "package", "games_packages_missing": missing}


# -- the run: sections, budget, results -----------------------------------------------------------------------


@dataclass
class Check:
    sizes: Sizes
    device: Any
    deadline: float
    dry_run: bool
    devices: str
    results: dict[str, Any] = field(default_factory=dict)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def section(self, name: str, run: Callable[[Check], dict[str, Any]]) -> None:
        """Run one section; record its figures and seconds, or its error, and go on."""
        started = time.monotonic()
        try:
            self.results[name] = {"ok": True, **run(self)}
        except Exception as err:  # a section's failure is a result, and the next one still runs
            self.results[name] = {"ok": False, "error": f"{type(err).__name__}: {err}", "trace": _trace(err)}
        self.results[name]["seconds"] = round(time.monotonic() - started, 2)
        free_memory()


def _trace(err: BaseException) -> str:
    return "".join(traceback.format_exception(type(err), err, err.__traceback__)[-3:])[-1500:]


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def reset_peak(device) -> int:
    """Reset the peak counter; the bytes allocated now (None-safe on CPU: 0)."""
    import torch

    if device.type != "cuda":
        return 0
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    return torch.cuda.memory_allocated(device)


def peak(device) -> int | None:
    """`torch.cuda.max_memory_allocated` since the last reset; None on CPU (no such allocator counter)."""
    import torch

    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device)


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gib(n: int | None) -> float | None:
    return None if n is None else round(n / 2**30, 3)


def is_oom(err: BaseException) -> bool:
    import torch

    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


# -- a. the update's peak memory against the plan -------------------------------------------------------------


def random_turns(count: int, prompt: int, response: int, vocab: int, seed: int) -> list[Any]:
    """Turns of random token ids (the ids below the added tokens), with the lengths asked for."""
    import torch

    from spiral_train.rollout.records import Turn

    g = torch.Generator().manual_seed(seed)
    turns = []
    for i in range(count):
        ids = torch.randint(0, vocab, (prompt + response,), generator=g).tolist()
        turns.append(
            Turn(
                "KuhnPoker-v1",
                f"player_{i % 2}",
                i,
                ids[:prompt],
                ids[prompt:],
                [-12.0] * response,
                True,
                False,
                1.0 if i % 2 else -1.0,
            )
        )
    return turns


def learner_settings(sizes: Sizes) -> Any:
    from spiral_train.learner import LearnerSettings

    return LearnerSettings(**{**PRESET_LEARNER, "max_new_tokens": sizes.response_tokens})


def one_update(check: Check, shape: str, lora_rank: int) -> dict[str, Any]:
    """One `Learner.update` of a random model of `shape` on one micro-batch per epoch; its peak memory."""
    import torch

    from spiral_train.learner import Learner
    from spiral_train.models import random_model

    s, device = check.sizes, check.device
    overrides = s.shapes[shape]
    config = random_model.model_config(shape, **overrides)
    record: dict[str, Any] = {
        "shape": shape,
        "overrides": overrides,
        "parameters": random_model.parameter_count(config),
        "lora_rank": lora_rank,
        "micro_batch_size": PRESET_LEARNER["micro_batch_size"],
        "num_epochs": PRESET_LEARNER["num_epochs"],
        "prompt_tokens": s.prompt_tokens,
        "response_tokens": s.response_tokens,
        "gradient_checkpointing": True,
        "bf16": True,
        "devices": check.devices,
    }
    model = learner = None
    try:
        reset_peak(device)
        model = random_model.random_model(config, seed=0, dtype=torch.float32, device=device)
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
        if lora_rank:
            from peft import LoraConfig, get_peft_model  # as spiral_train.models.lora.wrap does (it imports the config)

            model = get_peft_model(
                model,
                LoraConfig(
                    r=lora_rank,
                    lora_alpha=32.0,
                    lora_dropout=0.0,
                    target_modules="all-linear",
                    bias="none",
                    task_type="CAUSAL_LM",
                ),
            )
        model.eval()
        turns = random_turns(PRESET_LEARNER["micro_batch_size"], s.prompt_tokens, s.response_tokens, PAD, seed=1)
        learner = Learner(model, learner_settings(s), device, PAD)
        record["weights_gib"] = gib(reset_peak(device))
        started = time.monotonic()
        metrics = learner.update(turns)
        sync(device)
        record["update_s"] = round(time.monotonic() - started, 3)
        record["peak_gib"] = gib(peak(device))
        record["allocated_after_update_gib"] = (
            gib(torch.cuda.memory_allocated(device)) if device.type == "cuda" else None
        )
        record["tokens_per_s"] = round(
            PRESET_LEARNER["num_epochs"] * len(turns) * (s.prompt_tokens + s.response_tokens) / record["update_s"], 1
        )
        record["loss_finite"] = math.isfinite(metrics["loss"])
    except Exception as err:
        if not is_oom(err):
            raise
        record["out_of_memory"] = f"{type(err).__name__}: {str(err).splitlines()[0]}"
        record["peak_gib"] = gib(peak(device))
    finally:
        del model, learner
        free_memory()
    if device.type != "cuda":
        record["note"] = "cpu: no CUDA allocator, so no peak; the code path ran"
    record.update(plan_for(record))
    return record


def update_memory(check: Check) -> dict[str, Any]:
    runs = []
    for shape in check.sizes.shapes:
        if check.left() < 60:
            runs.append({"shape": shape, "skipped": "time budget"})
            continue
        full = one_update(check, shape, 0)
        runs.append(full)
        if shape != "Qwen3-0.6B" and ("out_of_memory" in full or check.dry_run):
            lora = one_update(check, shape, check.sizes.lora_rank)
            lora["why"] = (
                "full fine-tuning ran out of memory on this card" if "out_of_memory" in full else "dry run: LoRA path"
            )
            runs.append(lora)
    return {"runs": runs}


def plan_for(record: dict[str, Any]) -> dict[str, Any]:
    """The plan's update peak for `record`'s run, and measured / plan; or why there is none."""
    try:
        from spiral_train.config import make_config
        from spiral_train.models import random_model
        from spiral_train.plan import plan_run

        with tempfile.TemporaryDirectory() as tmp:
            folder = random_model.build(
                Path(tmp) / "model", record["shape"], weights=False, tokenizer=False, **record["overrides"]
            )
            config = make_config(
                "paper-qwen3-4b",
                {
                    "model": str(folder),
                    "device": "cuda",
                    "generator": "hf",
                    "ray_workers": 0,
                    "ray_learners": 1,
                    "ray_learner_strategy": "ddp",
                    "lora_rank": record["lora_rank"],
                    "micro_batch_size": record["micro_batch_size"],
                    "max_new_tokens": record["response_tokens"],
                    "gradient_checkpointing": record["gradient_checkpointing"],
                    "bf16": record["bf16"],
                },
            )
            planned = plan_run(config, record["devices"]).update_peak_bytes(device=0)
    except Exception as err:  # the plan is another change; its absence is a result
        return {"plan": f"plan unavailable: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"}
    out: dict[str, Any] = {"plan_gib": gib(planned)}
    if record.get("peak_gib") is not None and planned:
        out["measured_over_plan"] = round(record["peak_gib"] * 2**30 / planned, 3)
    return out


# -- b. bf16 sampler against the learner's logprobs ------------------------------------------------------------


class IdsOnly:
    """What `HFGenerator` asks of a tokenizer, for random token ids (no text is measured here)."""

    eos_token_id = PAD
    pad_token_id = PAD

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return ""


def dlogp(check: Check) -> dict[str, Any]:
    import torch

    from spiral_train.learner import make_batch, response_logprobs
    from spiral_train.models import random_model
    from spiral_train.rollout.generation import HFGenerator, autocast
    from spiral_train.rollout.records import Turn

    s, device = check.sizes, check.device
    shape = "Qwen3-0.6B"
    config = random_model.model_config(shape, **s.shapes[shape])
    master = random_model.random_model(config, seed=0, dtype=torch.float32, device=device)
    out: dict[str, Any] = {
        "shape": shape,
        "overrides": s.shapes[shape],
        "batch": s.sample_batch,
        "prompt_tokens": s.sample_prompt,
        "new_tokens": s.sample_new,
        "temperature": 1.0,
    }
    for name, sharpen in (("random_init", 1.0), ("logits_x8", 8.0)):
        if check.left() < 60:
            out[name] = {"skipped": "time budget"}
            continue
        if sharpen != 1.0:
            with torch.no_grad():
                master.get_output_embeddings().weight.mul_(sharpen)  # tied: input embeddings scale too
        g = torch.Generator(device=device).manual_seed(0)
        prompts = torch.randint(0, PAD, (s.sample_batch, s.sample_prompt), generator=g, device=device).tolist()
        sampler = random_model.random_model(config, seed=0, dtype=torch.bfloat16, device=device)
        sampler.load_state_dict({k: v.to(torch.bfloat16) for k, v in master.state_dict().items()})
        samplers = {  # a bf16 engine's weights; and --generator hf, which samples the learner's own model
            "bf16_sampler": HFGenerator(sampler, IdsOnly(), s.sample_batch, bf16=False),
            "hf_sampler_autocast": HFGenerator(master, IdsOnly(), s.sample_batch, bf16=True),
        }
        record: dict[str, Any] = {"bf16_autocast_on": device.type == "cuda"}
        for sampler_name, generator in samplers.items():
            generations = generator.generate(prompts, temperature=1.0, max_new_tokens=s.sample_new, generator=g)
            turns = [
                Turn("x", "player_0", i, p, gen.token_ids, gen.logprobs, True, False)
                for i, (p, gen) in enumerate(zip(prompts, generations))
            ]
            learner_autocast, learner_fp32, sampled = [], [], []
            with torch.no_grad():
                for start in range(0, len(turns), 8):
                    batch = make_batch(turns[start : start + 8], PAD, device)
                    m = batch.response_mask.bool()
                    with autocast(device, True):
                        lp, _ = response_logprobs(master, batch, 1.0)
                    lp32, _ = response_logprobs(master, batch, 1.0)
                    learner_autocast.append(lp[m].float().cpu())
                    learner_fp32.append(lp32[m].float().cpu())
                    sampled.append(batch.sampler_logprobs[m].cpu())
            sampled_t = torch.cat(sampled)
            record[sampler_name] = {
                "tokens": int(sampled_t.numel()),
                "mean_sampled_logprob": round(float(sampled_t.mean()), 4),
                "vs_learner_autocast": _dlogp_stats(torch.cat(learner_autocast) - sampled_t),
                "vs_learner_fp32": _dlogp_stats(torch.cat(learner_fp32) - sampled_t),
            }
        del sampler, samplers
        free_memory()
        out[name] = record
    del master
    return out


def _dlogp_stats(d) -> dict[str, float]:
    a = d.abs()
    return {
        "mean_abs": float(a.mean()),
        "max_abs": float(a.max()),
        "share_above_0.1": float((a > 0.1).float().mean()),
        "share_above_1.0": float((a > 1.0).float().mean()),
    }


# -- c. token_logprobs by chunk size --------------------------------------------------------------------------


def token_logprobs_chunks(check: Check) -> dict[str, Any]:
    import torch

    from spiral_train import token_logprobs as tl

    s, device = check.sizes, check.device
    vocab = 151_936
    g = torch.Generator(device=device).manual_seed(0)
    shape = (s.logprob_rows, s.logprob_positions, vocab)
    logits = torch.randn(shape, generator=g, device=device, dtype=torch.bfloat16).mul_(3)  # no fp32 copy: 5 GB
    targets = torch.randint(0, vocab, (s.logprob_rows, s.logprob_positions - 1), generator=g, device=device)
    weights = torch.randn(targets.shape, generator=g, device=device)
    out: dict[str, Any] = {
        "rows": s.logprob_rows,
        "positions": s.logprob_positions,
        "vocab": vocab,
        "logits_dtype": "bfloat16",
        "logits_gib": gib(logits.numel() * logits.element_size()),
        "default_chunk_elements": tl.CHUNK_ELEMENTS.get(device.type, tl.CHUNK_ELEMENTS["cpu"]),
        "runs": [],
    }

    def run_once(fn) -> tuple[float, int | None]:
        leaf = logits.detach().requires_grad_(True)
        base = reset_peak(device)
        started = time.monotonic()
        logp = fn(leaf)
        (logp * weights).sum().backward()
        sync(device)
        seconds = time.monotonic() - started
        top = peak(device)
        del leaf, logp
        return seconds, None if top is None else top - base

    def chunked(chunk: int):
        return lambda leaf: tl.token_logprobs(leaf, targets, 1.0, chunk_elements=chunk)[0]

    def full_log_softmax(leaf):
        return torch.log_softmax(leaf[:, :-1].float(), dim=-1).gather(-1, targets[..., None]).squeeze(-1)

    for chunk in s.chunk_sizes:
        if check.left() < 30:
            out["runs"].append({"chunk_elements": chunk, "skipped": "time budget"})
            continue
        times, extra = [], None
        for _ in range(s.repeats):
            seconds, extra = run_once(chunked(chunk))
            times.append(seconds)
        out["runs"].append(
            {
                "chunk_elements": chunk,
                "positions_per_chunk": max(1, chunk // vocab),
                "seconds": round(min(times), 4),
                "peak_above_inputs_gib": gib(extra),
            }
        )
    if check.left() >= 30:
        try:
            seconds, extra = run_once(full_log_softmax)
            out["full_log_softmax"] = {"seconds": round(seconds, 4), "peak_above_inputs_gib": gib(extra)}
        except Exception as err:
            if not is_oom(err):
                raise
            out["full_log_softmax"] = {"out_of_memory": str(err).splitlines()[0]}
    return out


# -- d. generation tokens/s -----------------------------------------------------------------------------------


def generation_speed(check: Check) -> dict[str, Any]:
    import torch
    from transformers import GenerationConfig

    from spiral_train.models import random_model
    from spiral_train.rollout.generation import HFGenerator

    s, device = check.sizes, check.device
    shape = "Qwen3-0.6B"
    config = random_model.model_config(shape, **s.shapes[shape])
    model = random_model.random_model(config, seed=0, dtype=torch.bfloat16, device=device)
    g = torch.Generator(device=device).manual_seed(0)
    ids = torch.randint(0, PAD, (s.gen_batch, s.gen_prompt), generator=g, device=device)
    mask = torch.ones_like(ids)
    out: dict[str, Any] = {
        "shape": shape,
        "overrides": s.shapes[shape],
        "dtype": "bfloat16",
        "batch": s.gen_batch,
        "prompt_tokens": s.gen_prompt,
        "new_tokens": s.gen_new,
        "runs": [],
    }

    def hf_generate(cache: str | None, compile_: bool) -> Callable[[], int]:
        def run() -> int:
            gen = GenerationConfig(
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=s.gen_new,
                min_new_tokens=s.gen_new,
                pad_token_id=PAD,
                eos_token_id=PAD,
            )
            if cache:
                gen.cache_implementation = cache
            gen.disable_compile = not compile_  # transformers compiles a static cache's decoding on CUDA unless told
            if compile_:
                from transformers import CompileConfig

                gen.compile_config = CompileConfig(mode="reduce-overhead")
            with torch.no_grad():
                result = model.generate(input_ids=ids, attention_mask=mask, generation_config=gen)
            return int(result.shape[1] - ids.shape[1]) * s.gen_batch

        return run

    def spiral_sampler() -> int:
        generator = HFGenerator(model, IdsOnly(), s.gen_batch, bf16=False)
        prompts = ids.tolist()
        gens = generator.generate(prompts, temperature=1.0, max_new_tokens=s.gen_new, generator=g)
        return sum(len(x.token_ids) for x in gens)

    variants = [
        ("generate, dynamic cache, eager", hf_generate(None, False)),
        ("generate, static cache, eager", hf_generate("static", False)),
        ("generate, static cache, compiled (reduce-overhead: CUDA graphs)", hf_generate("static", True)),
        ("spiral HFGenerator (dynamic cache, eager)", spiral_sampler),
    ]
    for name, run in variants:
        if check.left() < 40:
            out["runs"].append({"variant": name, "skipped": "time budget"})
            continue
        record: dict[str, Any] = {"variant": name}
        try:
            frames_before = _dynamo_frames()
            started = time.monotonic()
            run()  # warm-up: compiles, captures graphs, allocates the static cache
            sync(device)
            record["warmup_s"] = round(time.monotonic() - started, 2)
            started = time.monotonic()
            tokens = run()
            sync(device)
            seconds = time.monotonic() - started
            record.update(
                tokens=tokens,
                seconds=round(seconds, 3),
                tokens_per_s=round(tokens / seconds, 1),
                compiled_frames=_dynamo_frames() - frames_before,
            )
        except Exception as err:  # one variant failing (a compile) is a result
            record["error"] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        out["runs"].append(record)
        free_memory()
    if device.type != "cuda":
        out["note"] = "cpu: transformers compiles only on CUDA, so the compiled variant runs eager here"
    return out


def _dynamo_frames() -> int:
    with contextlib.suppress(Exception):
        from torch._dynamo.utils import counters

        return int(counters["stats"]["unique_graphs"])
    return 0


# -- main -----------------------------------------------------------------------------------------------------


SECTIONS: dict[str, Callable[[Check], dict[str, Any]]] = {
    "update_memory": update_memory,
    "dlogp": dlogp,
    "token_logprobs": token_logprobs_chunks,
    "generation": generation_speed,
}


def machine(device) -> dict[str, Any]:
    import torch
    import transformers

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "device": str(device),
    }
    with contextlib.suppress(Exception):
        import peft

        info["peft"] = peft.__version__
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1))
    else:
        info["cpu_threads"] = torch.get_num_threads()
    return info


def attach_plan(path: Path) -> None:
    """Fill in the plan of each update run of a results file written where the plan did not import."""
    import_spiral_train()
    results = json.loads(path.read_text())
    for run in results.get("sections", {}).get("update_memory", {}).get("runs", []):
        if "shape" in run and "devices" in run:
            run.update(plan_for(run))
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results["sections"]["update_memory"], indent=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="the JSON file to write")
    parser.add_argument("--dry-run", action="store_true", help="tiny shapes, on CPU unless --device says otherwise")
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --dry-run)")
    parser.add_argument("--budget-s", type=float, default=540, help="sections after this many seconds are skipped")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=list(SECTIONS))
    parser.add_argument("--devices", default=None, help="what the plan is given, default 1x<this GPU's GiB>GB")
    parser.add_argument("--attach-plan", type=Path, metavar="RESULTS", help="add the plan to a results file")
    args = parser.parse_args(argv)
    if args.attach_plan:
        attach_plan(args.attach_plan)
        return 0
    if args.out is None:
        parser.error("--out FILE is required")
    started = time.monotonic()
    imports = import_spiral_train()
    import torch

    device = torch.device(args.device or ("cpu" if args.dry_run else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device is visible; run with --dry-run (CPU) or on a GPU machine")
    if device.type == "cpu":
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    info = machine(device)
    devices = args.devices or (f"1x{int(info['gpu_memory_gib'])}GB" if device.type == "cuda" else "cpu:24GB")
    check = Check(DRY if args.dry_run else GPU, device, started + args.budget_s, args.dry_run, devices)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def write(done: bool) -> None:
        """The results so far: written after every section, so a run cut short keeps what it measured."""
        results = {
            "dry_run": args.dry_run,
            "complete": done,
            "machine": info,
            "imports": imports,
            "sizes": dict(vars(check.sizes)),
            "sections": check.results,
            "imported_forbidden": sorted(
                {m.split(".")[0] for m, mod in sys.modules.items() if mod is not None} & set(FORBIDDEN)
            ),
            "total_s": round(time.monotonic() - started, 1),
        }
        args.out.write_text(json.dumps(results, indent=1, default=str) + "\n")

    for name in args.sections:
        print(f"[gpu_check] {name} ({check.left():.0f} s of budget left) ...", flush=True)
        check.section(name, SECTIONS[name])
        print(f"[gpu_check] {name}: {'ok' if check.results[name]['ok'] else check.results[name]['error']}", flush=True)
        write(done=False)
    write(done=True)
    print(f"[gpu_check] wrote {args.out} in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
