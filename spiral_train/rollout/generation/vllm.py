"""The vLLM generation backend: a vLLM engine beside the learner, refreshed with its weights after every update.

The transformers backend samples from the learner's own model object; vLLM keeps its own copy of the weights
(repacked into its kernels' layout), so after each update `sync_weights()` sends it the learner's WHOLE state
dict. A partial update is not an option: vLLM fuses q/k/v and gate/up, and loading some of a fused group
corrupts its output. The prefix cache is then reset, since cached keys and values belong to the old weights.

The sampler's logprobs come straight from vLLM: with `logprobs_mode="processed_logprobs"` they are the
logprobs of each sampled token under the distribution it was sampled from (after temperature, and after
`top_k` / `top_p` truncation with renormalisation), which is what `learner.response_logprobs(..., temperature,
top_k, top_p)` recomputes (equal to 1e-4 on CPU in fp32). On a GPU the engine computes in bf16 and they differ
more: the learner's PPO ratio divides by its own logprobs, and these enter only through truncated importance
sampling (`learner`), which also logs the gap.

Where the engine lives:
- in this process (the default: `VLLM_ENABLE_V1_MULTIPROCESSING=0`): weights go over as tensors, in memory;
- in its own process (the user exported `VLLM_ENABLE_V1_MULTIPROCESSING=1`): tensors do not survive the
  process boundary, so the learner writes a safetensors copy to a temporary folder and the engine reloads it.

On a GPU the engine is built with sleep mode and CUDA graphs: `sleep()` (called by the trainer before each
update) frees its weights and KV cache for the learner, and the next `sync_weights()` empties PyTorch's cache and
wakes it with the new weights, streamed one tensor at a time (a LoRA model's merged layers too). vLLM's CPU build
has no sleep mode, so there `sleep()` does nothing, and runs eager.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from spiral_train.config.schema import VLLM_INSTALL_HINT
from spiral_train.models.lora import merged_weights
from spiral_train.rollout.generation.base import Generation, eos_ids, stop_tokens

INSTALL_HINT = f"the vLLM backend (generator='vllm') needs vLLM. {VLLM_INSTALL_HINT}"
CPU_KV_CACHE_MB = 256
"""KV cache size on CPU when none is given: without a size vLLM's CPU build takes ~7.6 GiB."""


def import_vllm() -> Any:
    """vLLM, imported only when this backend is chosen (it costs ~5 s), run in this process by default, with its
    usage reports off (nothing leaves the machine)."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")  # its GPU worker reports to stats.vllm.ai otherwise
    os.environ.setdefault("DO_NOT_TRACK", "1")
    try:
        import vllm
    except ImportError as err:
        raise ImportError(f"{INSTALL_HINT} ({err})") from err
    return vllm


class ExpectedReloadNoise(logging.Filter):
    """Drops what vLLM logs at each weight reload that says nothing is wrong: its INFO lines (the reload's time,
    the prefix cache reset), repeated every step, and the warning "RotaryEmbedding: Failed to load weights".
    A rotary embedding's cos/sin cache is computed from the config and is in no state dict, so the reload finds
    nothing to load for it and puts the engine's own cache back (vLLM's `reload/layerwise.py`). Every other
    warning and error passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return (
            record.levelno >= logging.WARNING and "RotaryEmbedding: Failed to load weights" not in record.getMessage()
        )


@contextmanager
def quiet_reload() -> Iterator[None]:
    """`ExpectedReloadNoise` on vLLM's log handlers (those of the "vllm" logger, where vLLM writes) meanwhile."""
    handlers = logging.getLogger("vllm").handlers
    noise = ExpectedReloadNoise()
    for handler in handlers:
        handler.addFilter(noise)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(noise)


def head_dim(model: PreTrainedModel) -> int:
    config = model.config
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def check_cpu_head_dim(model: PreTrainedModel, supported: list[int]) -> None:
    """Fail at start, not deep inside vLLM's kernels, when its CPU attention cannot run this model."""
    size = head_dim(model)
    if size not in supported:
        raise ValueError(
            f"the model's head_dim is {size}, which vLLM's CPU attention does not support (it supports {supported}). "
            "Use generator='hf', or a model whose head_dim it supports: with no --model, generator='vllm' builds "
            "the tiny model with 2 heads of 32 (spiral_train.models.tiny.TinySpec(num_heads=2, num_kv_heads=1))"
        )


def save_whole_state_dict(model: PreTrainedModel, folder: Path) -> None:
    """The model's config and EVERY tensor of its state dict, tied ones included, as one safetensors file.

    `save_pretrained` leaves out `lm_head.weight` when it is tied to the embeddings, and vLLM's CPU build,
    reloading from such a folder, updates the embeddings but keeps its own stale copy of the output head
    (measured: logprobs off by 0.2 after a sync). Written in full, the head is reloaded like any weight.
    """
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)
    tensors: dict[str, torch.Tensor] = {}
    storages: set[int] = set()
    for name, tensor in merged_weights(model):
        tensor = tensor.detach().to("cpu").contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        tensors[name] = tensor.clone() if pointer in storages else tensor  # safetensors refuses shared memory
        storages.add(pointer)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})


class VLLMGenerator:
    """Sampling with vLLM, kept in step with `model` (the learner's) by `sync_weights()`."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        model_path: str | None = None,
        max_model_len: int | None = None,
        kv_cache_mb: int | None = None,
        gpu_memory_utilization: float = 0.3,
        max_num_seqs: int = 256,
        bf16: bool = False,
        seed: int = 0,
        sync_from_disk: bool | None = None,
    ) -> None:
        """`model_path`: a folder holding the model's config and tokenizer (default: where `model` was loaded
        from); the engine starts from it and is then given `model`'s in-memory weights. `sync_from_disk`:
        None picks by where the engine runs (from disk only when it is in another process)."""
        vllm = import_vllm()
        from vllm.platforms import current_platform

        self.model = model
        self.tokenizer = tokenizer
        self.eos_ids = eos_ids(model, tokenizer)
        self.on_gpu = not current_platform.is_cpu()
        if not self.on_gpu:
            from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

            check_cpu_head_dim(model, CPUAttentionBackend.get_supported_head_sizes())
        path = model_path or model.name_or_path
        if not path:
            raise ValueError("VLLMGenerator needs model_path: the model was not loaded from a folder or hub id")
        in_process = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0"
        self.sync_from_disk = (not in_process) if sync_from_disk is None else sync_from_disk
        self._weights_dir = Path(tempfile.mkdtemp(prefix="spiral-vllm-weights-")) if self.sync_from_disk else None
        if kv_cache_mb is None and not self.on_gpu:
            kv_cache_mb = CPU_KV_CACHE_MB
        kwargs: dict[str, Any] = {
            "model": str(path),
            "tokenizer": str(path),
            # bf16 on a GPU when the learner computes in bf16; the ratio's pi_old is the learner's own logprob, and
            # truncated importance sampling corrects what differs (`learner`, mismatch/* metrics)
            "dtype": "bfloat16" if bf16 and self.on_gpu else "float32",
            "seed": seed,
            "enforce_eager": not self.on_gpu,  # CUDA graphs on a GPU; vLLM's CPU build runs eager
            "enable_prefix_caching": True,
            "logprobs_mode": "processed_logprobs",
            "max_num_seqs": max_num_seqs,
            "max_model_len": max_model_len,
        }
        if kv_cache_mb is not None:
            kwargs["kv_cache_memory_bytes"] = kv_cache_mb * 2**20
        if self.on_gpu:
            kwargs["enable_sleep_mode"] = True
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        else:
            # vLLM 0.32's CPU runner crashes ("CPU Generator does not use offset") when a seeded request's
            # prompt is split over two prefill chunks; unsplit prompts keep per-request seeds working
            kwargs["enable_chunked_prefill"] = False
        self.llm = vllm.LLM(**kwargs)
        self.max_model_len = int(self.llm.llm_engine.model_config.max_model_len)
        self._asleep = False
        self._syncs = 0
        self.sync_weights()  # the learner's weights exactly, whatever the folder held (e.g. on resume)

    # -- weights ------------------------------------------------------------------------------------

    @torch.no_grad()
    def sync_weights(self) -> None:
        """Load the learner's whole state dict into the engine (a LoRA model's with its adapters merged; waking
        the engine first if asleep)."""
        if self._asleep:
            # the learner's update left blocks in PyTorch's caching allocator that vLLM's sleep-mode allocator
            # cannot use: hand them back to the device first (verl and ms-swift hit this out-of-memory at wake-up)
            gc.collect()
            torch.cuda.empty_cache()
            self.llm.wake_up(tags=["weights"])
        with quiet_reload():
            if self.sync_from_disk:
                assert self._weights_dir is not None
                self._syncs += 1
                target = self._weights_dir / f"sync-{self._syncs}"
                save_whole_state_dict(self.model, target)
                self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(target)})
                shutil.rmtree(self._weights_dir / f"sync-{self._syncs - 1}", ignore_errors=True)
            else:
                # one tensor at a time: with LoRA each merged layer exists only while the engine copies it in
                self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": merged_weights(self.model)})
            if self._asleep:
                self.llm.wake_up(tags=["kv_cache"])
                self._asleep = False
            self.llm.reset_prefix_cache()

    def sleep(self) -> None:
        """Free the engine's GPU memory while the learner trains; the next sync wakes it. No-op on CPU."""
        if self.on_gpu and not self._asleep:
            # level 2 drops the weights too: the next sync_weights() overwrites every one of them anyway
            self.llm.sleep(level=2)
            self._asleep = True

    def close(self) -> None:
        """Shut the engine down (needed before another engine starts in this process)."""
        self.llm.llm_engine.engine_core.shutdown()
        if self._weights_dir is not None:
            shutil.rmtree(self._weights_dir, ignore_errors=True)

    # -- sampling -----------------------------------------------------------------------------------

    def generate(
        self,
        prompt_ids: list[list[int]],
        *,
        temperature: float,
        max_new_tokens: int,
        generator: torch.Generator,
        top_k: int = 0,
        top_p: float = 1.0,
        stop_ids: Sequence[int] = (),
    ) -> list[Generation]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        if self._asleep:  # asleep means its weights are gone: bring the learner's back
            self.sync_weights()
        for prompt in prompt_ids:
            if len(prompt) + max_new_tokens > self.max_model_len:
                raise ValueError(
                    f"a prompt of {len(prompt)} tokens plus max_new_tokens={max_new_tokens} exceeds the vLLM "
                    f"engine's max_model_len={self.max_model_len}; raise vllm_max_model_len (or shorten prompts)"
                )
        # one seed per request, drawn from the caller's generator: a run is reproducible for its seed, and a
        # request's sample does not depend on what else is in the batch
        stops = stop_tokens(self.eos_ids, stop_ids)
        seeds = torch.randint(0, 2**63 - 1, (len(prompt_ids),), generator=generator, device=generator.device)
        params = [
            SamplingParams(
                n=1,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                max_tokens=max_new_tokens,
                logprobs=0,  # the sampled token's own logprob only
                seed=int(seed),
                stop_token_ids=stops,
                detokenize=False,
            )
            for seed in seeds.tolist()
        ]
        prompts = [TokensPrompt(prompt_token_ids=list(p)) for p in prompt_ids]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [self._generation(out.outputs[0], stops) for out in outputs]

    def _generation(self, completion: Any, stops: list[int]) -> Generation:
        ids = list(completion.token_ids)
        if completion.logprobs is None or len(completion.logprobs) != len(ids):
            raise RuntimeError("vLLM returned no logprob for some sampled tokens; is logprobs_mode supported?")
        logprobs = [float(step[token].logprob) for token, step in zip(ids, completion.logprobs)]
        stopped = completion.finish_reason == "stop"
        if completion.finish_reason not in ("stop", "length"):
            raise RuntimeError(f"vLLM ended a request with finish_reason={completion.finish_reason!r}")
        text_ids = ids[:-1] if stopped and ids and ids[-1] in stops else ids
        return Generation(
            text=self.tokenizer.decode(text_ids, skip_special_tokens=False),
            token_ids=ids,
            logprobs=logprobs,
            finish_reason="stop" if stopped else "length",
        )
