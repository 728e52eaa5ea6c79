"""A model's shapes and parameter counts, from its `config.json` alone: the model is built on the meta device.

What the memory model needs: parameters (tied embeddings counted once), what trains (all of them, or LoRA's
adapters: rank x (in + out) per targeted Linear, peft's "all-linear" leaving out the output head), the
largest tensor, the embedding and head, and a decoder block's widths. No weights are read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spiral_train.models.random_model import SHAPES, model_config

KNOWN_CONFIGS: dict[str, dict[str, Any]] = {
    f"Qwen/{name}{suffix}": model_config(name) for name in SHAPES for suffix in ("", "-Base")
}
"""The hub's config.json of the Qwen3 sizes `random_model` knows, so a plan for a hub id needs no download."""


class ShapeError(ValueError):
    """The model's config.json cannot be read (or describes no decoder the plan knows)."""


@dataclass(frozen=True)
class ModelShape:
    """Counts are elements (parameters), not bytes."""

    architecture: str
    params: int
    """Every parameter once (a tied head is the embedding)."""
    trainable: int
    """What the optimizer holds: `params`, or the LoRA adapters."""
    lora: bool
    largest_trainable: int
    """The biggest trainable tensor (AdamW's per-tensor temporaries on CPU)."""
    linear_params: int
    """Weights of every Linear of the base, the output head included (what bf16 autocast casts)."""
    layer_params: int
    """One decoder block's parameters (a gathered FSDP unit)."""
    layer_linear_params: int
    """One decoder block's Linear weights."""
    root_params: int
    """Parameters outside the decoder blocks: embeddings, head, final norm (FSDP's root unit)."""
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    tied: bool
    qk_norm: bool
    """Qwen3's per-head RMSNorm of queries and keys (two more saved tensors each)."""
    lora_linears_per_layer: int
    """Linear layers per block that carry an adapter (0 without LoRA)."""
    lora_targeted_params: int
    """Base weights of the Linears that carry an adapter, all blocks (what a merge copies)."""
    lora_largest_targeted: int
    """The largest single Linear that carries an adapter: a weight sync merges one such layer at a time."""
    lora_rank: int

    @property
    def q_width(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim

    def describe(self) -> str:
        tied = "tied embeddings" if self.tied else "untied head"
        what = (
            f"LoRA rank {self.lora_rank}: {_count(self.trainable)} trainable"
            if self.lora
            else "full fine-tuning: every parameter trains"
        )
        return (
            f"{self.architecture}, {_count(self.params)} parameters ({tied}; {self.layers} layers, hidden "
            f"{self.hidden}, vocab {self.vocab:,}); {what}"
        )


def _count(n: int) -> str:
    return f"{n / 1e9:.3g}B" if n >= 1e9 else f"{n / 1e6:.3g}M"


def read_config(model: str | None, tiny: Any = None) -> tuple[Any, str]:
    """The transformers config of `model` (a folder, a run's checkpoint, a LoRA adapter's base, or a hub id in
    the local cache or `KNOWN_CONFIGS`) and where it came from. `model` None: the tiny model, from its cache
    when built, else from `tiny` (a `TinySpec`) with its vocabulary's upper bound, without building it."""
    from transformers import AutoConfig, Qwen3Config

    if model is None:
        from spiral_train.models.tiny import cache_root

        folder = cache_root() / tiny.key()
        if (folder / "config.json").exists():
            return AutoConfig.from_pretrained(folder), f"the tiny model ({folder})"
        config = Qwen3Config(
            vocab_size=tiny.vocab_size,
            hidden_size=tiny.hidden_size,
            intermediate_size=tiny.intermediate_size,
            num_hidden_layers=tiny.num_layers,
            num_attention_heads=tiny.num_heads,
            num_key_value_heads=tiny.num_kv_heads,
            head_dim=tiny.hidden_size // tiny.num_heads,
            tie_word_embeddings=True,
        )
        return config, "the tiny model's build settings (not built yet; vocabulary at most 2,048)"
    folder = Path(model).expanduser()
    if folder.is_dir():
        from spiral_train.models import lora

        folder = Path(lora.model_folder(folder))
        if lora.is_adapter_dir(folder):
            return read_config(lora.base_source(folder))
        try:
            return AutoConfig.from_pretrained(folder), str(folder / "config.json")
        except (OSError, ValueError) as err:
            raise ShapeError(f"cannot read {folder / 'config.json'}: {first_line(err)}") from None
    try:
        return AutoConfig.from_pretrained(model, local_files_only=True), f"{model} (Hugging Face cache)"
    except (OSError, ValueError) as err:
        if model in KNOWN_CONFIGS:
            known = {k: v for k, v in KNOWN_CONFIGS[model].items() if k not in ("transformers_version", "torch_dtype")}
            return Qwen3Config(**known), f"{model} (its shapes, built in)"
        raise ShapeError(f"cannot read the config.json of {model!r} here: {first_line(err)}") from None


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def model_shape(config: Any, lora_rank: int = 0, lora_targets: tuple[str, ...] = ("all-linear",)) -> ModelShape:
    """Count `config`'s model, built on the meta device (no memory), with LoRA adapters of `lora_rank` on
    `lora_targets` (peft's target_modules) when it is > 0."""
    key = (json.dumps(config.to_dict(), sort_keys=True, default=str), lora_rank, tuple(lora_targets))
    if key not in _SHAPES:
        _SHAPES[key] = _shape(config, lora_rank, tuple(lora_targets))
    return _SHAPES[key]


_SHAPES: dict[tuple[str, int, tuple[str, ...]], ModelShape] = {}
"""Shapes counted so far: re-planning a run with other options builds no model again."""


def _shape(config: Any, lora_rank: int, lora_targets: tuple[str, ...]) -> ModelShape:
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    blocks = set(getattr(model, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in blocks]
    if not layers:
        raise ShapeError(f"{type(model).__name__} names no decoder block class (_no_split_modules): cannot plan it")
    unique = {id(p): p for p in model.parameters()}
    params = sum(p.numel() for p in unique.values())
    head = model.get_output_embeddings()
    embed = model.get_input_embeddings()
    tied = head is not None and head.weight is embed.weight
    linears = {id(m.weight): m for m in model.modules() if isinstance(m, torch.nn.Linear)}
    linear_params = sum(m.weight.numel() for m in linears.values())
    if head is not None and id(head.weight) not in linears:  # a head that is not an nn.Linear
        linear_params += head.weight.numel()
    layer_ids = {id(p) for layer in layers for p in layer.parameters()}
    first = layers[0]
    layer_linears = [(n, m) for n, m in first.named_modules() if isinstance(m, torch.nn.Linear)]
    targeted = [m for n, m in layer_linears if _targeted(n, lora_targets)] if lora_rank > 0 else []
    if lora_rank > 0:
        per_layer = sum(lora_rank * (m.in_features + m.out_features) for m in targeted)
        trainable = per_layer * len(layers)
        largest = max(lora_rank * max(m.in_features, m.out_features) for m in targeted) if targeted else 0
    else:
        trainable = params
        largest = max(p.numel() for p in unique.values())
    text = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    heads = text.num_attention_heads
    return ModelShape(
        architecture=type(model).__name__,
        params=params,
        trainable=trainable,
        lora=lora_rank > 0,
        largest_trainable=largest,
        linear_params=linear_params,
        layer_params=sum(p.numel() for p in first.parameters()),
        layer_linear_params=sum(m.weight.numel() for _, m in layer_linears),
        root_params=sum(p.numel() for i, p in unique.items() if i not in layer_ids),
        vocab=embed.weight.shape[0],
        hidden=text.hidden_size,
        layers=len(layers),
        heads=heads,
        kv_heads=getattr(text, "num_key_value_heads", None) or heads,
        head_dim=getattr(text, "head_dim", None) or text.hidden_size // heads,
        intermediate=getattr(text, "intermediate_size", None) or 4 * text.hidden_size,
        tied=tied,
        qk_norm=any(n.endswith("q_norm") for n, _ in first.named_modules()),
        lora_linears_per_layer=len(targeted),
        lora_targeted_params=sum(m.weight.numel() for m in targeted) * len(layers),
        lora_largest_targeted=max((m.weight.numel() for m in targeted), default=0),
        lora_rank=lora_rank,
    )


def _targeted(name: str, targets: tuple[str, ...]) -> bool:
    """peft's matching: "all-linear" takes every Linear of a block; a name matches a module whose name ends
    with it (q_proj matches self_attn.q_proj)."""
    if list(targets) == ["all-linear"]:
        return True
    return any(name == t or name.endswith("." + t) for t in targets)
