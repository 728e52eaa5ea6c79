"""The tokenizer of a random-init folder (`spiral_train.models.random_model`), laid out like the hub's Qwen3-Base, built
offline: Qwen2's byte-level BPE pipeline (NFC, the Qwen2 split regex, byte level) with exactly the hub's 151,643
ordinary tokens, then the hub's 26 added tokens at their ids (`ADDED_TOKENS`); eos and pad `<|endoftext|>`, and
Qwen3's ChatML chat template (`CHAT_TEMPLATE`).

The ordinary vocabulary is not Qwen's: its merges are trained on the games' own prompts and answers (random
play, `spiral_train.models.warmup.random_play_turns`), split by Qwen2's regex so a token never crosses a word; the rest,
up to 151,643, are filler merges of bytes 0x80-0xFF, which only non-ASCII text reaches. Deterministic in `seed`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

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
    from spiral_train.models.warmup import random_play_turns

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
