"""Random-init models laid out like the hub's Qwen3-Base folders, built offline, for rehearsals at real shapes.

A folder from `build` holds what `Qwen/Qwen3-*-Base` holds, with random weights:

- `config.json` in the hub's (transformers 4.51) layout: the shape of `SHAPES`, vocabulary 151,936, eos and bos
  `<|endoftext|>` (151643), rope_theta 1e6, tied embeddings, dtype bfloat16;
- `generation_config.json`: eos and bos 151643 and nothing else (no sampling defaults);
- `model.safetensors`: random bf16 weights (transformers' own init, seeded), or none with `weights=False`;
- `tokenizer.json`, `vocab.json`, `merges.txt`, `tokenizer_config.json`: Qwen2's byte-level BPE pipeline (NFC,
  the Qwen2 split regex, byte level) with exactly the hub's 151,643 ordinary tokens, then the hub's 26 added
  tokens at their ids (`ADDED_TOKENS`: `<|endoftext|>` 151643, `<|im_start|>` 151644, `<|im_end|>` 151645, ...,
  `</think>` 151668): 151,669 entries for 151,936 embedding rows. eos and pad are `<|endoftext|>`; the chat
  template (`CHAT_TEMPLATE`) writes ChatML turns as Qwen3's does.

The ordinary vocabulary is not Qwen's: its merges are trained on the games' own prompts and answers (random
play, `spiral_train.tiny.random_play_turns`), split by Qwen2's regex so a token never crosses a word, which
gives game prompts a realistic length (about 4-5 characters a token); the rest, up to 151,643, are filler
merges of bytes 0x80-0xFF, which only non-ASCII text reaches. Everything is deterministic in `seed`.

    python -m spiral_train.random_model --shape Qwen3-0.6B --out /tmp/qwen3-0.6b
    python -m spiral_train.random_model --shape Qwen3-0.6B --out /tmp/q --hidden 64 --layers 2 --heads 2
    python -m spiral_train.random_model --shape Qwen3-4B --out /tmp/qwen3-4b --no-weights   # for a memory plan

This module imports neither `spiral_envs` nor the rest of `spiral_train` at import time (only the tokenizer's
training text needs the games), so a machine without the games can build configs and weights from it.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VOCAB_ROWS = 151_936
"""Rows of Qwen3's embedding (and output) matrix, for every size: more than the tokenizer has entries."""
ORDINARY_TOKENS = 151_643
"""Qwen3's byte-level BPE tokens; the added tokens follow from this id."""
EOS = "<|endoftext|>"
EOS_ID = ORDINARY_TOKENS
ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)
"""The hub's added tokens in id order from `ORDINARY_TOKENS`, with their `special` flag in tokenizer_config.json."""
SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
"""Qwen2's pre-tokenizer split (tokenizer.json's `Split` pattern)."""
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)
"""Qwen3's chat template without its tool calls and reasoning-content parsing: `<|im_start|>{role}\\n{content}
<|im_end|>\\n` per message, and `<|im_start|>assistant\\n` for the generation prompt (with an empty think block
when `enable_thinking=False`)."""
TRAINED_TOKENS = 8192
"""Ordinary tokens whose merges are learnt from game text (alphabet included; fewer if the text runs out)."""
TEXT_GAMES = ("TicTacToe-v0", "KuhnPoker-v1", "SimpleNegotiation-v1")
GAMES_PER_ENV = 12


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


# -- the tokenizer ------------------------------------------------------------------------------------------------


def byte_level_alphabet() -> dict[int, str]:
    """GPT-2's byte -> printable character map, which byte-level BPE vocabularies are written in."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return chars


def game_text(seed: int) -> list[str]:
    """The training text of the merges: prompts (under the `qwen3` template, its markers removed) and answers of
    random legal play of `TEXT_GAMES`."""
    import spiral_envs
    from spiral_train.tiny import random_play_turns

    rng = random.Random(seed)
    texts = []
    for turn in random_play_turns(TEXT_GAMES, {}, rng, GAMES_PER_ENV, restate=True):
        prompt = spiral_envs.render_prompt("qwen3", turn.observation)
        for marker, _ in ADDED_TOKENS:
            prompt = prompt.replace(marker, "")
        texts.append(prompt + turn.answers(rng, 1)[0])
    return texts


def build_tokenizer(seed: int = 0) -> Any:
    """The `tokenizers.Tokenizer` of the folder: Qwen2's pipeline, `ORDINARY_TOKENS` ordinary tokens (merges
    trained on `game_text`, then filler), and `ADDED_TOKENS` at the hub's ids."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    def pipeline(tok: Tokenizer) -> Tokenizer:
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(SPLIT_REGEX), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
            ]
        )
        tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
        return tok

    trained = pipeline(Tokenizer(models.BPE()))
    trainer = trainers.BpeTrainer(
        vocab_size=TRAINED_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    trained.train_from_iterator(game_text(seed), trainer=trainer)
    state = json.loads(trained.to_str())["model"]
    vocab: dict[str, int] = dict(state["vocab"])
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    for left, right in _filler_merges(set(vocab)):
        if len(vocab) >= ORDINARY_TOKENS:
            break
        vocab[left + right] = len(vocab)
        merges.append((left, right))
    if len(vocab) != ORDINARY_TOKENS:
        raise RuntimeError(f"built {len(vocab)} ordinary tokens, not {ORDINARY_TOKENS}")
    tok = pipeline(Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False)))
    tok.post_processor = None
    for content, special in ADDED_TOKENS:
        tok.add_special_tokens([AddedToken(content, special=special, normalized=False)])
    ids = [tok.token_to_id(content) for content, _ in ADDED_TOKENS]
    if ids != list(range(ORDINARY_TOKENS, ORDINARY_TOKENS + len(ADDED_TOKENS))):
        raise RuntimeError(f"added tokens landed at {ids[:3]}..., not from {ORDINARY_TOKENS}")
    return tok


def _filler_merges(taken: set[str]):
    """Merges of bytes 0x80-0xFF (UTF-8 continuation and lead bytes, absent from ASCII text), in a fixed order:
    every pair, then each pair with a third byte; a merge whose result is already a token is skipped."""
    high = [byte_level_alphabet()[b] for b in range(0x80, 0x100)]
    pairs = [(a, b) for a in high for b in high]
    for a, b in pairs:
        if a + b not in taken:
            taken.add(a + b)
            yield a, b
    for a, b in pairs:
        for c in high:
            if a + b + c not in taken:
                taken.add(a + b + c)
                yield a + b, c


def tokenizer_config() -> dict[str, Any]:
    """tokenizer_config.json as the hub's Qwen3-Base has it (`CHAT_TEMPLATE` for its chat template)."""
    added = {
        str(ORDINARY_TOKENS + i): {
            "content": content,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": special,
        }
        for i, (content, special) in enumerate(ADDED_TOKENS)
    }
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": [content for content, _ in ADDED_TOKENS[1:14]],
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": EOS,
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": EOS,
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def write_tokenizer(out_dir: str | Path, seed: int = 0) -> None:
    """tokenizer.json, vocab.json, merges.txt and tokenizer_config.json of `build_tokenizer(seed)` in `out_dir`."""
    out = Path(out_dir)
    tok = build_tokenizer(seed)
    tok.save(str(out / "tokenizer.json"))
    model = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))["model"]
    (out / "vocab.json").write_text(json.dumps(model["vocab"], ensure_ascii=False), encoding="utf-8")
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spiral_train.random_model",
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
