"""Build a randomly initialised Qwen3 for speed and memory checks (no model hub here).

A random model of the right shape costs what a real one costs per token, which is all a throughput or memory
figure needs (its answers are garbage, so every move is invalid). Two kinds:

- `--shape Qwen3-0.6B|Qwen3-1.7B|Qwen3-4B`: a folder laid out like the hub's Qwen3-Base (vocabulary 151,936,
  its special tokens, eos `<|endoftext|>`, chat template), from `spiral_train.models.random_model` (the same as
  `python -m spiral_train.models.random_model`); `--hidden`/`--layers`/`--heads` scale it down, `--no-weights` writes
  config and tokenizer only.
- without `--shape` (what docs/benchmarks.md's figures used): the tiny model's small-vocabulary tokenizer
  (about 2,000 tokens, eos `<|im_end|>`) and the width and depth asked for.

    .venv/bin/python benchmarks/random_model.py --shape Qwen3-0.6B --out /tmp/qwen3-0.6b
    .venv/bin/python benchmarks/random_model.py --out /tmp/qwen3-100m --hidden 768 --layers 12
"""

from __future__ import annotations

import argparse
import random
import sys


def small_vocabulary(args: argparse.Namespace) -> None:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from spiral_train.models.tiny import TinySpec, random_play_turns, train_tokenizer

    spec = TinySpec()
    tokenizer = train_tokenizer(random_play_turns(spec.env_ids, {}, random.Random(0), games_per_env=50), spec)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden,
        intermediate_size=4 * args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        head_dim=args.hidden // args.heads,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen3ForCausalLM(config)
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters")
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)


def main() -> None:
    if "--shape" in sys.argv:
        from spiral_train.models.random_model import main as hub_like

        raise SystemExit(hub_like(sys.argv[1:]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--kv-heads", type=int, default=4)
    small_vocabulary(parser.parse_args())


if __name__ == "__main__":
    main()
