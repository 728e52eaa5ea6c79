"""Build a randomly initialised Qwen3 of a chosen size, with the tiny model's tokenizer, for speed checks.

The machines here reach no model hub; a random model of the right shape costs what a real one costs per
token, which is all a throughput or memory figure needs (its answers are garbage, so every move is invalid).

    .venv/bin/python benchmarks/random_model.py --out /tmp/qwen3-100m --hidden 768 --layers 12
"""

from __future__ import annotations

import argparse
import random

from transformers import Qwen3Config, Qwen3ForCausalLM

from spiral_train.tiny import TinySpec, random_play_turns, train_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--kv-heads", type=int, default=4)
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
