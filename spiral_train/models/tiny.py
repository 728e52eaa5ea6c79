"""The embedded default model: a tiny Qwen3 built offline, that starts as a valid but strategy-free player.

A pretrained base model already writes well-formed moves, and self-play only has to teach it strategy. A
randomly initialised model does not: measured here, RAE alone from random init collapses (the losing role's
baseline sinks to -1, its gradient vanishes, and pushing down invalid answers alone drives the model into
garbage). So the tiny model gets a short warm-up that imitates *uniformly random legal play*: afterwards it
answers `\\boxed{<legal move>}` almost always, with no preference between legal moves, like a base model
that knows the format but not the game. Each warm-up turn is trained on all its legal answers at once
(`TinySpec.warmup_answers`): imitating one sampled move, the model never learned which TicTacToe cells are
free. How long the warm-up runs is set per game (`WARMUP_STEPS_BY_GAME`): long enough that each game's legal
set is learnt on any machine. Everything is built locally (tokenizer trained on game text, random init), and cached
by a key of the build settings, so a second run starts at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

import spiral_envs
from spiral_train.models.warmup import WarmupTurn, imitate_random_play, random_play_turns

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
BUILD_VERSION = 3
"""Bump when the build recipe changes, so old caches are not reused."""


@dataclass(frozen=True)
class TinySpec:
    """How to build the tiny model; its hash names the cache folder. A run's spec is
    `spiral_train.models.loading.tiny_spec`: its games, their options, and the warm-up length they need
    (`warmup_steps_for`); the other fields keep these defaults."""

    env_ids: tuple[str, ...] = ("TicTacToe-v0", "KuhnPoker-v1", "SimpleNegotiation-v1")
    env_kwargs: tuple[tuple[str, str], ...] = ()
    """(env id, JSON of options) pairs, e.g. (("KuhnPoker-v1", '{"num_rounds": 1}'),)."""
    template: str = "qwen3"
    vocab_size: int = 2048
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 128
    max_positions: int = 4096
    warmup_steps: int = 600
    """Optimizer steps of the warm-up. A game that needs more to land past the jump in which its legal set is
    learnt sets its own in `WARMUP_STEPS_BY_GAME`, which `warmup_steps_for` (and so a run's spec) applies."""
    warmup_batch: int = 32
    warmup_lr: float = 3e-3
    warmup_answers: int = 9
    """Each warm-up turn is trained on up to this many distinct legal moves (all of them where there are fewer),
    weighted equally: the expected gradient of imitating one uniformly random legal move, without its noise.
    With one sampled move the model never learned which TicTacToe cells are free (46% invalid answers)."""
    restate: bool = True
    """Warm-up answers first restate the mover's private fact where its view has one (Kuhn Poker: "Card: Q. "),
    then the boxed move: a habit of reading the prompt that teaches no strategy."""
    seed: int = 0

    def key(self) -> str:
        data = asdict(self)
        data["version"] = BUILD_VERSION
        data["texts"] = [_first_prompt(env_id, dict(self.env_kwargs)) for env_id in self.env_ids]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


WARMUP_STEPS_BY_GAME: dict[str, int] = {"TicTacToe-v0": 800}
"""Warm-up steps of a spec whose games include the game, where the default (`TinySpec.warmup_steps`) leaves its
legal set half learnt on some machines: TicTacToe's is learnt in a jump whose step depends on the floating-point
order of the build (its thread count, its CPU), so its warm-up runs long enough past it (docs/learning.md)."""


def warmup_steps_for(env_ids: tuple[str, ...]) -> int:
    """The warm-up steps of a spec for `env_ids`: the most any of its games needs, at least `TinySpec`'s default.
    A spec none of whose games is in `WARMUP_STEPS_BY_GAME` keeps the default (and so its cache key)."""
    return max([TinySpec.warmup_steps, *(WARMUP_STEPS_BY_GAME.get(env_id, 0) for env_id in env_ids)])


def _first_prompt(env_id: str, env_kwargs: dict[str, str]) -> str:
    """The opening observation of a game: when a game's wording changes, so does the cache key."""
    env = spiral_envs.make(env_id, **json.loads(env_kwargs.get(env_id, "{}")))
    env.reset(seed=0)
    return str(env.observe(env.agent_selection))


def cache_root() -> Path:
    base = os.environ.get("SPIRAL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "spiral"
    )
    return Path(base) / "tiny"


def tiny_model_path(spec: TinySpec | None = None, log=print) -> Path:
    """The cached tiny model folder for `spec`, built first if missing (written atomically)."""
    spec = spec or TinySpec()
    target = cache_root() / spec.key()
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    log(
        f"building the tiny model (once; cached in {target}): random games, a tokenizer, then "
        f"{spec.warmup_steps} warm-up steps (1 to 4 minutes on an idle 2-core CPU; it reports its own estimate) ..."
    )
    prune_stale_builds(target.parent)
    work = Path(tempfile.mkdtemp(prefix=f"{BUILD_PREFIX}{os.getpid()}-", dir=target.parent))
    try:
        build_tiny_model(spec, work, log=log)
        try:
            os.replace(work, target)
        except OSError:  # another process finished first
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"tiny model ready in {time.time() - started:.0f}s")
    return target


BUILD_PREFIX = ".build-"
"""A build works in `<cache>/.build-<pid>-<random>` until it is renamed to its key: the pid names its owner."""
UNOWNED_STALE_S = 24 * 3600
"""A build folder without an owner's pid (the older naming) is stale this long after it was last changed."""


def prune_stale_builds(root: Path) -> list[Path]:
    """Delete the build folders in `root` that a killed build left (their pid no longer runs on this machine);
    the folders removed."""
    removed = []
    for folder in root.glob(f"{BUILD_PREFIX}*"):
        owner = folder.name[len(BUILD_PREFIX) :].split("-")[0]
        if owner.isdigit():
            stale = not _pid_alive(int(owner))
        else:
            stale = time.time() - folder.stat().st_mtime > UNOWNED_STALE_S
        if stale and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def build_tiny_model(spec: TinySpec, out_dir: Path, log=print) -> None:
    rng = random.Random(spec.seed)
    torch.manual_seed(spec.seed)
    kwargs = {env_id: json.loads(opts) for env_id, opts in spec.env_kwargs}
    games = random_play_turns(spec.env_ids, kwargs, rng, games_per_env=200, restate=spec.restate)
    tokenizer = train_tokenizer(games, spec)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        head_dim=spec.hidden_size // spec.num_heads,
        max_position_embeddings=spec.max_positions,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen3ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    log(f"tiny model: {sum(p.numel() for p in model.parameters()):,} parameters, vocab {len(tokenizer)}")
    imitate_random_play(model, tokenizer, spec, kwargs, rng, log)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def train_tokenizer(turns: list[WarmupTurn], spec: TinySpec) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on the prompts and answers of the games: any text encodes, no unknowns.

    Merges may cross word boundaries (no pre-split into words), so the rules text, which every prompt
    repeats, becomes a few long tokens, and the facts that change (a card, a board row, the betting so far)
    sit in a handful of tokens near the end of a ~25-token prompt. With a word-level BPE the card was one
    token 300 deep, and the model (112k parameters with that vocabulary) never learned to read it (measured:
    restating it was right at chance, 35%, after 300 warm-up steps and still after 300 more).
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    rng = random.Random(spec.seed)
    corpus = (spiral_envs.render_prompt(spec.template, t.observation) + t.answers(rng, 1)[0] for t in turns)
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
