"""The embedded default model: a tiny Qwen3 built offline, that starts as a valid but strategy-free player.

A pretrained base model already writes well-formed moves, and self-play only has to teach it strategy. A
randomly initialised model does not: measured here, RAE alone from random init collapses (the losing role's
baseline sinks to -1, its gradient vanishes, and pushing down invalid answers alone drives the model into
garbage). So the tiny model gets a short warm-up that imitates *uniformly random legal play*: afterwards it
answers `\\boxed{<legal move>}` almost always, with no preference between legal moves, like a base model
that knows the format but not the game. Each warm-up turn is trained on all its legal answers at once
(`TinySpec.warmup_answers`): imitating one sampled move, the model never learned which TicTacToe cells are
free. Everything is built locally (tokenizer trained on game text, random init), and cached by a key of the
build settings, so a second run starts at once.
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

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
BUILD_VERSION = 3
"""Bump when the build recipe changes, so old caches are not reused."""


@dataclass(frozen=True)
class TinySpec:
    """How to build the tiny model; its hash names the cache folder."""

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
    """TicTacToe's legal set is learnt in a jump after ~350 steps (legal mass 0.74 at 300 steps, 0.96 at 600)."""
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
        f"{spec.warmup_steps} warm-up steps (about 2 minutes on an idle 2-core CPU) ..."
    )
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
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


@dataclass(frozen=True)
class WarmupTurn:
    """One turn of random play: what the mover saw, what it says before its move, and its legal moves."""

    observation: str
    prefix: str
    legal: tuple[str, ...]

    def answers(self, rng: random.Random, count: int) -> list[str]:
        """Up to `count` distinct legal answers, drawn uniformly."""
        moves = self.legal if len(self.legal) <= count else rng.sample(self.legal, count)
        return [self.prefix + spiral_envs.boxed(move) for move in moves]


def random_play_turns(
    env_ids: tuple[str, ...], env_kwargs: dict[str, dict], rng: random.Random, games_per_env: int, restate: bool = False
) -> list[WarmupTurn]:
    """Every turn of uniformly random legal games; with `restate`, a turn's answers first restate the mover's
    card where its view has one (`restatement`)."""
    turns = []

    def recording_random_agent(observation: str, info: dict) -> str:
        legal = tuple(info["legal_actions"])
        if not legal:  # a TextArena game's free-talk turn: no move to imitate
            return "Nothing to add."
        turns.append(WarmupTurn(observation, restatement(info["view"]) if restate else "", legal))
        return spiral_envs.boxed(rng.choice(legal))

    for env_id in env_ids:
        env = spiral_envs.make(env_id, **env_kwargs.get(env_id, {}))
        agents = dict.fromkeys(env.possible_agents, recording_random_agent)
        for _ in range(games_per_env):
            spiral_envs.play_game(env, agents, seed=rng.randrange(2**31))
    return turns


def restatement(view: dict) -> str:
    """The private fact a player must read before it moves, said back: "Card: Q. " in Kuhn Poker; "" in a
    game whose view has no card (a board or an inventory is too long to say back in a few tokens)."""
    return f"Card: {view['card']}. " if "card" in view else ""


def train_tokenizer(turns: list[WarmupTurn], spec: TinySpec) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on the prompts and answers of the games: any text encodes, no unknowns.

    Merges may cross word boundaries (no pre-split into words), so the rules text, which every prompt
    repeats, becomes a few long tokens, and the facts that change (a card, a board row, the betting so far)
    sit in a handful of tokens near the end of a ~25-token prompt. With a word-level BPE the card was one
    token 300 deep, and the 112k-parameter model never learned to read it (measured: restating it was right
    at chance, 35%, after 300 warm-up steps and still after 300 more).
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


def imitate_random_play(
    model: Qwen3ForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    spec: TinySpec,
    env_kwargs: dict[str, dict],
    rng: random.Random,
    log=print,
) -> None:
    """Supervised warm-up on fresh random-play turns: learn the answer format, not a strategy.

    A turn's loss is the mean, over its answers (`WarmupTurn.answers`), of each answer's negative
    log-likelihood summed over its tokens; the batch loss is the mean over its turns."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.warmup_lr, weight_decay=0.0)
    pool = random_play_turns(spec.env_ids, env_kwargs, rng, games_per_env=300, restate=spec.restate)
    eos = tokenizer.eos_token_id
    model.train()
    started = time.monotonic()
    for step in range(spec.warmup_steps):
        rows, weights = [], []
        for turn in (pool[rng.randrange(len(pool))] for _ in range(spec.warmup_batch)):
            prompt = tokenizer(
                spiral_envs.render_prompt(spec.template, turn.observation), add_special_tokens=False
            ).input_ids
            answers = turn.answers(rng, spec.warmup_answers)
            for answer in answers:
                rows.append((prompt, [*tokenizer(answer, add_special_tokens=False).input_ids, eos]))
                weights.append(1.0 / len(answers))
        loss = weighted_answer_nll(model, rows, torch.tensor(weights), tokenizer.pad_token_id) / spec.warmup_batch
        lr = spec.warmup_lr * min(1.0, (step + 1) / 20) * (1 - step / spec.warmup_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 25 == 0 or step == spec.warmup_steps - 1:
            elapsed = time.monotonic() - started
            left = elapsed / (step + 1) * (spec.warmup_steps - step - 1)
            log(
                f"  warm-up {step + 1}/{spec.warmup_steps}: imitation loss {loss.item():.3f} per turn "
                f"({elapsed:.0f} s so far, about {_duration(left)} left)"
            )
    model.eval()


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def weighted_answer_nll(
    model: Qwen3ForCausalLM, rows: list[tuple[list[int], list[int]]], weights: torch.Tensor, pad_id: int
) -> torch.Tensor:
    """Sum over rows of weight x the answer's negative log-likelihood given its prompt (summed over tokens)."""
    width = max(len(p) + len(a) for p, a in rows)
    ids = torch.full((len(rows), width), pad_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (p, a) in enumerate(rows):
        seq = p + a
        ids[row, : len(seq)] = torch.tensor(seq)
        labels[row, len(p) : len(seq)] = torch.tensor(a)
        mask[row, : len(seq)] = 1
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    targets = labels[:, 1:]
    token_nll = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1).clamp(min=0), reduction="none"
    ).view(targets.shape)
    per_row = (token_nll * (targets != -100)).sum(dim=1)
    return (per_row * weights).sum()
