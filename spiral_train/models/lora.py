"""LoRA: train low-rank adapters (peft) on a frozen base model, checkpoint only the adapters, hand out merged weights.

Why: full fine-tuning keeps fp32 weights, gradients and two Adam moments for every parameter; LoRA keeps the
last three for the adapters only, so the optimizer state shrinks by orders of magnitude and a checkpoint holds
megabytes instead of the whole model. The base weights never change, so the KL reference is the same model
with its adapters switched off (no second copy), and a checkpoint points at its base instead of copying it.

`peft` is imported lazily: a full fine-tuning run (lora_rank 0) never needs it.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from spiral_train.config.schema import LORA_INSTALL_HINT as INSTALL_HINT
from spiral_train.config.views import LoraSettings

ADAPTER_CONFIG = "adapter_config.json"
"""peft's `save_pretrained` writes this next to the adapter weights; its presence marks a LoRA checkpoint."""


def peft_missing() -> bool:
    """True when `peft` cannot be imported (config validation checks it too, so a run fails at start)."""
    try:
        import peft  # noqa: F401
    except ImportError:
        return True
    return False


def is_peft(model: Any) -> bool:
    """Whether `model` is a peft-wrapped model (LoRA adapters on a base).

    Never imports peft: if nothing imported it, no model can be a peft model (and full fine-tuning runs
    do not pay its import time).
    """
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(model, peft.PeftModel)


def is_adapter_dir(path: str | Path) -> bool:
    """Whether `path` is a folder holding a saved LoRA adapter rather than a whole model."""
    return (Path(path) / ADAPTER_CONFIG).is_file()


def model_folder(path: str | Path) -> str:
    """A checkpoint folder (`checkpoints/step_N`) names its `model/` subfolder; any other path is itself."""
    path = Path(path)
    if (path / "model").is_dir() and not (path / "config.json").exists() and not is_adapter_dir(path):
        return str(path / "model")
    return str(path)


def base_source(adapter_dir: str | Path) -> str:
    """The base model an adapter was trained on, as recorded in its adapter_config.json."""
    data = json.loads((Path(adapter_dir) / ADAPTER_CONFIG).read_text())
    base = data.get("base_model_name_or_path")
    if not base:
        raise ValueError(
            f"{Path(adapter_dir) / ADAPTER_CONFIG} names no base_model_name_or_path; set it to the folder or id "
            "of the model the adapter was trained on"
        )
    return base


def load_weights(source: str, device: torch.device) -> PreTrainedModel:
    """The plain fp32 model of `source`: the model itself, or for a LoRA adapter folder its base model.

    A LoRA checkpoint holds only the adapter, so its base must still exist; if it does not, the error says
    which base it was and how to point the checkpoint elsewhere.
    """
    if not is_adapter_dir(source):
        return AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).to(device)
    base = base_source(source)
    try:
        return AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).to(device)
    except OSError as err:
        raise FileNotFoundError(
            f"{source} holds a LoRA adapter whose base model {base!r} could not be loaded ({err}); restore that "
            f"folder, or set base_model_name_or_path in {Path(source) / ADAPTER_CONFIG} to where the base is now"
        ) from err


def prepare(model: PreTrainedModel, settings: LoraSettings, source: str) -> Any:
    """The model to train: `model` itself (full fine-tuning), or with LoRA adapters on it.

    `source` is where `model` was loaded from. A LoRA adapter folder (a checkpoint being resumed) gets its
    saved adapter back, trainable; with rank 0 that adapter is merged in and the whole model trains.
    Otherwise a rank > 0 adds fresh adapters.
    """
    if is_adapter_dir(source):
        if peft_missing():
            raise ImportError(f"{source} is a LoRA checkpoint; loading it needs peft: {INSTALL_HINT}")
        if settings.rank == 0:
            return load_adapter(model, source, trainable=False).merge_and_unload()
        saved_rank = json.loads((Path(source) / ADAPTER_CONFIG).read_text()).get("r")
        if saved_rank != settings.rank:
            raise ValueError(
                f"{source} holds a rank-{saved_rank} LoRA adapter but lora_rank={settings.rank}; pass "
                f"--lora-rank {saved_rank} to continue it, or --lora-rank 0 to fine-tune it merged into its base"
            )
        return load_adapter(model, source, trainable=True)
    if settings.rank == 0:
        return model
    return wrap(model, settings.rank, settings.alpha, settings.dropout, list(settings.target_modules), source)


def wrap(model: PreTrainedModel, rank: int, alpha: float, dropout: float, targets: list[str], source: str) -> Any:
    """`model` with fresh LoRA adapters of rank `rank` on `targets`; only the adapters require grad.

    `targets` is peft's `target_modules`: ["all-linear"] (every linear layer but the output head) or module
    names such as q_proj. `source` is recorded as the base (made absolute when it is a local folder, so a
    resume from another working directory still finds it).
    """
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules="all-linear" if list(targets) == ["all-linear"] else list(targets),
        bias="none",
        task_type="CAUSAL_LM",
    )
    with _quiet_peft():
        peft_model = get_peft_model(model, config)
    peft_model.peft_config["default"].base_model_name_or_path = _absolute_if_local(source)
    return peft_model


def load_adapter(base: PreTrainedModel, adapter_dir: str | Path, trainable: bool) -> Any:
    """`base` with the adapter saved in `adapter_dir` attached (trainable to continue a run, else frozen)."""
    from peft import PeftModel

    with _quiet_peft():
        return PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=trainable)


def load_frozen(path: str | Path, device: torch.device) -> PreTrainedModel:
    """A frozen model for a fixed opponent: a plain model folder, or a LoRA checkpoint merged into its base.

    Merging gives a plain transformers model, as fast to sample from as the base.
    """
    if not is_adapter_dir(path):
        return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).to(device).eval()
    if peft_missing():
        raise ImportError(f"{path} is a LoRA checkpoint; loading it needs peft: {INSTALL_HINT}")
    model = load_adapter(load_weights(str(path), device), path, trainable=False)
    return model.merge_and_unload().eval()


def adapter_base(model: Any) -> str | None:
    """Where the frozen base of a LoRA model came from (None for a plain model): saved in checkpoints."""
    return model.peft_config["default"].base_model_name_or_path if is_peft(model) else None


class BaseReference:
    """The KL reference of a LoRA run: the learner's own model with its adapters switched off.

    The base weights are frozen, so this is exactly the starting policy, at no memory cost. Called like a
    model (keyword arguments in, model output out), which is all the learner asks of a reference.
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    def __call__(self, **kwargs: Any) -> Any:
        with self.model.disable_adapter():
            return self.model(**kwargs)


def merged_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """`merged_weights(model)` as one dict: every merged layer at once (prefer the iterator where a consumer
    takes one tensor at a time, e.g. a vLLM engine)."""
    return dict(merged_weights(model))


@torch.no_grad()
def merged_weights(model: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """The base model's weights with the LoRA adapters merged in, under plain Hugging Face names, one tensor at
    a time, in state-dict order.

    For an engine that loads whole state dicts (e.g. vLLM weight sync): no `base_model.model.` prefixes, no
    `.base_layer.` infixes, no `lora_` tensors. The live model is not touched (no in-place merge, its
    training mode and adapters stay as they are). A merged layer is a new tensor, made when it is reached, so a
    consumer that drops each tensor before taking the next holds one merged layer at a time, never a second
    copy of the model; every other entry is a detached view sharing storage with the live model, so callers
    must copy, not modify, them. A plain (non-peft) model gives its own state dict, detached.
    """
    if not is_peft(model):
        for name, tensor in model.state_dict().items():
            yield name, tensor.detach()
        return
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    adapted: dict[str, Any] = {}
    for name, module in base.named_modules():
        if not isinstance(module, LoraLayer) or module.merged:  # a merged layer already holds its delta
            continue
        if getattr(module, "lora_variant", None):
            raise NotImplementedError(f"{name}: merged_weights supports plain LoRA, not DoRA or other variants")
        adapters = [a for a in module.active_adapters if a in module.lora_A]
        if adapters and not module.disable_adapters:
            adapted[f"{name}.weight"] = (module, adapters)
    for key, tensor in base.state_dict().items():
        parts = key.split(".")
        if any(part.startswith("lora_") for part in parts):
            continue
        key = ".".join(part for part in parts if part != "base_layer")
        tensor = tensor.detach()
        if key in adapted:
            module, adapters = adapted.pop(key)
            tensor = tensor + sum(module.get_delta_weight(a) for a in adapters).to(tensor.dtype)
        yield key, tensor
    if adapted:
        raise RuntimeError(f"LoRA deltas without a base weight: {sorted(adapted)}")


@contextmanager
def _quiet_peft() -> Iterator[None]:
    """peft asks transformers 5 for `is_gradient_checkpointing`, which warns that it is deprecated: not ours to fix."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def _absolute_if_local(source: str) -> str:
    path = Path(source)
    return str(path.resolve()) if path.is_dir() else source
