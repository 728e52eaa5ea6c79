"""Random-init models laid out like the hub's Qwen3-Base folders, built offline, for rehearsals at real shapes.

A folder from `build` holds what `Qwen/Qwen3-*-Base` holds, with random weights:

- `config.json` in the hub's (transformers 4.51) layout: the shape of `SHAPES`, vocabulary 151,936, eos and bos
  `<|endoftext|>` (151643), rope_theta 1e6, tied embeddings, dtype bfloat16;
- `generation_config.json`: eos and bos 151643 and nothing else (no sampling defaults);
- `model.safetensors`: random bf16 weights (transformers' own init, seeded), or none with `weights=False`;
- `tokenizer.json`, `vocab.json`, `merges.txt`, `tokenizer_config.json`: the hub's layout, special tokens, eos and
  chat template, with an ordinary vocabulary trained on the games (`spiral_train.models.hub_tokenizer`): 151,669
  entries for 151,936 embedding rows.

    python -m spiral_train.models.random_model --shape Qwen3-0.6B --out /tmp/qwen3-0.6b
    python -m spiral_train.models.random_model --shape Qwen3-0.6B --out /tmp/q --hidden 64 --layers 2 --heads 2
    python -m spiral_train.models.random_model --shape Qwen3-4B --out /tmp/qwen3-4b --no-weights   # for a memory plan

This module imports neither `spiral_envs` nor the rest of `spiral_train` at import time (the tokenizer
module imports only the standard library until its training text needs the games), so a machine without the
games can build configs and weights from it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spiral_train.models.hub_tokenizer import ORDINARY_TOKENS, write_tokenizer

EOS_ID = ORDINARY_TOKENS

VOCAB_ROWS = 151_936
"""Rows of Qwen3's embedding (and output) matrix, for every size: more than the tokenizer has entries."""


@dataclass(frozen=True)
class Shape:
    """A Qwen3 size: the config.json fields that differ between sizes."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    max_positions: int = 32768


SHAPES: dict[str, Shape] = {
    "Qwen3-0.6B": Shape(hidden=1024, layers=28, heads=16, kv_heads=8, head_dim=128, intermediate=3072),
    "Qwen3-1.7B": Shape(hidden=2048, layers=28, heads=16, kv_heads=8, head_dim=128, intermediate=6144),
    "Qwen3-4B": Shape(hidden=2560, layers=36, heads=32, kv_heads=8, head_dim=128, intermediate=9728),
}
"""The Base models' config.json values (all: vocabulary 151,936, tied embeddings, rope_theta 1e6, 32,768
positions, RMSNorm eps 1e-6)."""


def model_config(
    shape: str = "Qwen3-0.6B",
    *,
    hidden: int | None = None,
    layers: int | None = None,
    heads: int | None = None,
    kv_heads: int | None = None,
) -> dict[str, Any]:
    """config.json's contents, as the hub writes it, for `shape` with any overrides.

    With `hidden` given, the model is scaled down around the real vocabulary: `heads` defaults to hidden // 32
    (at most the shape's), head_dim to hidden // heads (vLLM's CPU attention needs head_dim >= 32), KV heads
    keep the shape's grouping (heads / kv_heads) and the MLP its ratio to the width. `heads` alone keeps the
    width and sets head_dim to hidden // heads. A shape that cannot be built raises ValueError naming it."""
    if shape not in SHAPES:
        raise ValueError(f"shape={shape!r} is unknown; choose one of {list(SHAPES)}")
    real = SHAPES[shape]
    width = real.hidden if hidden is None else hidden
    if heads is None:
        heads = real.heads if hidden is None else max(1, min(real.heads, width // 32))
    head_dim = real.head_dim if hidden is None and heads == real.heads else width // heads
    if kv_heads is None:
        kv_heads = max(1, heads // (real.heads // real.kv_heads))
    intermediate = real.intermediate if hidden is None else round(width * real.intermediate / real.hidden)
    layers = real.layers if layers is None else layers
    if min(width, heads, kv_heads, layers) < 1 or head_dim < 2 or head_dim % 2 or heads % kv_heads:
        raise ValueError(
            f"hidden={width}, heads={heads}, kv_heads={kv_heads}, layers={layers} give head_dim {head_dim}: it must "
            "be even and >= 2 (>= 32 for vLLM's CPU attention), and heads a multiple of kv_heads"
        )
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": EOS_ID,
        "eos_token_id": EOS_ID,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "hidden_size": width,
        "initializer_range": 0.02,
        "intermediate_size": intermediate,
        "max_position_embeddings": real.max_positions,
        "max_window_layers": layers,
        "model_type": "qwen3",
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv_heads,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000,
        "sliding_window": None,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.51.0",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": VOCAB_ROWS,
    }


GENERATION_CONFIG = {"bos_token_id": EOS_ID, "eos_token_id": EOS_ID, "transformers_version": "4.51.0"}
"""generation_config.json: the Base models' eos, and no sampling defaults that would steer a test."""


def parameter_count(config: dict[str, Any]) -> int:
    """Parameters of a model of `config` (tied embeddings counted once), without building it."""
    h, inter, hd = config["hidden_size"], config["intermediate_size"], config["head_dim"]
    q, kv = config["num_attention_heads"] * hd, config["num_key_value_heads"] * hd
    layer = h * q + 2 * h * kv + q * h + 3 * h * inter + 2 * h + 2 * hd  # projections, 2 norms, q/k norms
    head = 0 if config["tie_word_embeddings"] else config["vocab_size"] * h
    return config["vocab_size"] * h + config["num_hidden_layers"] * layer + h + head


def random_model(config: dict[str, Any], seed: int = 0, dtype: Any = None, device: Any = "cpu") -> Any:
    """A `Qwen3ForCausalLM` of `config` (`model_config`'s dict) with transformers' random init, seeded, built
    straight in `dtype` (default bfloat16) on `device`: a 4B model never passes through fp32 on the host."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    dtype = torch.bfloat16 if dtype is None else dtype
    hf_config = AutoConfig.for_model(
        **{k: v for k, v in config.items() if k not in ("transformers_version", "torch_dtype")}
    )
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(hf_config)
    finally:
        torch.set_default_dtype(previous)
    return model.to(dtype).eval()


def build(
    out_dir: str | Path,
    shape: str = "Qwen3-0.6B",
    *,
    hidden: int | None = None,
    layers: int | None = None,
    heads: int | None = None,
    kv_heads: int | None = None,
    weights: bool = True,
    tokenizer: bool = True,
    seed: int = 0,
) -> Path:
    """Write a hub-like Qwen3-Base folder (module docstring) to `out_dir` and return it; `weights=False` writes no
    weights (a memory plan reads config.json only), `tokenizer=False` no tokenizer files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = model_config(shape, hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads)
    if weights:
        random_model(config, seed).save_pretrained(out)  # then config.json is rewritten in the hub's layout
    if tokenizer:
        write_tokenizer(out, seed)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "generation_config.json").write_text(json.dumps(GENERATION_CONFIG, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spiral_train.models.random_model",
        description="Write a random-init model folder laid out like the hub's Qwen3-Base (offline, deterministic).",
    )
    parser.add_argument("--shape", default="Qwen3-0.6B", choices=list(SHAPES))
    parser.add_argument("--out", required=True, help="the folder to write")
    parser.add_argument("--hidden", type=int, help="scale the width down (the vocabulary and tokens stay real)")
    parser.add_argument("--layers", type=int)
    parser.add_argument("--heads", type=int)
    parser.add_argument("--kv-heads", type=int)
    parser.add_argument("--no-weights", action="store_true", help="config and tokenizer only (for a memory plan)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        config = model_config(
            args.shape, hidden=args.hidden, layers=args.layers, heads=args.heads, kv_heads=args.kv_heads
        )
    except ValueError as err:
        parser.error(str(err))
    out = build(
        args.out,
        args.shape,
        hidden=args.hidden,
        layers=args.layers,
        heads=args.heads,
        kv_heads=args.kv_heads,
        weights=not args.no_weights,
        seed=args.seed,
    )
    print(
        f"{out}: {args.shape}-shaped, {parameter_count(config) / 1e6:.1f}M parameters"
        + ("" if not args.no_weights else " (no weights written)")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
