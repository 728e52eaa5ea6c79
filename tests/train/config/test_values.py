"""Every numeric option of `TrainConfig` is refused by `make_config` when it is nan, inf, -inf or out of its
documented range, with a `ConfigError` naming the option, and accepted inside that range (issue 28, item 10)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, get_type_hints

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spiral_train.config import ConfigError, TrainConfig, make_config
from spiral_train.config.values import MAX_NEW_TOKENS_CAP

INF = math.inf


@dataclasses.dataclass(frozen=True)
class Range:
    """An option's documented range: lo..hi, each end open or closed; `integer`: an int option; `also`: single
    values accepted outside it (tis_cap 0 turns it off); `accept_hi`: the top of the draws checked as accepted,
    where the run checks bound it further (the tiny model's 4096 positions)."""

    lo: float
    hi: float = INF
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False
    also: tuple[float, ...] = ()
    accept_hi: float | None = None

    def holds(self, x: float) -> bool:
        if x in self.also:
            return True
        above = x > self.lo if self.lo_open else x >= self.lo
        below = x < self.hi if self.hi_open else x <= self.hi
        return above and below


def positive_int(hi: float = INF, accept_hi: float | None = None) -> Range:
    return Range(1, hi, integer=True, accept_hi=accept_hi)


NON_NEGATIVE_INT = Range(0, integer=True)
POSITIVE = Range(0, lo_open=True)
NON_NEGATIVE = Range(0)
SHARE = Range(0, 1, lo_open=True)  # (0, 1]

RANGES: dict[str, Range] = {
    "env_weights": NON_NEGATIVE,  # one weight per env id
    "max_new_tokens": positive_int(MAX_NEW_TOKENS_CAP, accept_hi=4095),
    "temperature": POSITIVE,
    "top_k": NON_NEGATIVE_INT,
    "top_p": SHARE,
    "games_per_step": positive_int(),
    "num_envs": positive_int(),
    "generation_batch_size": positive_int(),
    "rae_decay": Range(0, 1, hi_open=True),
    "steps": positive_int(),
    "lr": POSITIVE,
    "warmup_steps": NON_NEGATIVE_INT,
    "weight_decay": NON_NEGATIVE,
    "adam_betas": Range(0, 1, hi_open=True),  # each of the two
    "num_epochs": positive_int(),
    "micro_batch_size": positive_int(),
    "clip_eps": POSITIVE,
    "tis_cap": Range(1, also=(0.0,)),
    "max_grad_norm": POSITIVE,
    "kl_coef": NON_NEGATIVE,
    "policy_average_decay": Range(0, 1, hi_open=True),
    "eval_every": NON_NEGATIVE_INT,
    "eval_games": NON_NEGATIVE_INT,
    "eval_temperature": NON_NEGATIVE,
    "eval_top_k": NON_NEGATIVE_INT,
    "eval_top_p": SHARE,
    "eval_probe_samples": NON_NEGATIVE_INT,
    "eval_probe_positions": positive_int(),
    "eval_reasoning_problems": positive_int(),
    "eval_reasoning_samples": positive_int(),
    "eval_reasoning_max_new_tokens": positive_int(MAX_NEW_TOKENS_CAP),
    "save_every": positive_int(),
    "keep_checkpoints": positive_int(),
    "log_transcripts": NON_NEGATIVE_INT,
    "seed": Range(0, 2**32, hi_open=True, integer=True),
    "pool_every": NON_NEGATIVE_INT,
    "pool_share": Range(0, 1),
    "pool_size": positive_int(),
    "ray_workers": NON_NEGATIVE_INT,
    "ray_learners": positive_int(),
    "max_staleness": NON_NEGATIVE_INT,
    "ray_worker_cpus": NON_NEGATIVE,
    "ray_worker_gpus": Range(0, 1, accept_hi=0),  # > 0 only with device cuda
    "ray_worker_resources": NON_NEGATIVE,  # each amount
    "ray_learner_cpus": POSITIVE,  # >= 0, but 0 only with ray_learner_gpus > 0
    "ray_learner_gpus": Range(0, accept_hi=0),  # whole GPUs, > 0 only with device cuda
    "ray_learner_timeout_s": POSITIVE,
    "ray_chunk_games": NON_NEGATIVE_INT,
    "ray_max_restarts": Range(-1, integer=True),  # -1: no limit
    "vllm_gpu_memory_utilization": SHARE,
    "vllm_kv_cache_mb": positive_int(),
    "vllm_max_model_len": positive_int(),
    "tiny_warmup_steps": positive_int(),
    "lora_rank": NON_NEGATIVE_INT,
    "lora_alpha": POSITIVE,
    "lora_dropout": Range(0, 1, hi_open=True),
    "plan_prompt_tokens": positive_int(),
}


NEEDS: dict[str, dict[str, Any]] = {
    "ray_learners": {"ray_workers": 1},
    "env_weights": {"env_ids": ["KuhnPoker-v1", "TicTacToe-v0"]},
}
"""What an option's values need beside them (more than one learner rank needs Ray workers; `env_weights` is
drawn as the second of two weights, the first 1, as they may not all be 0)."""


def numeric_options() -> list[str]:
    types = get_type_hints(TrainConfig)
    return [
        f.name for f in dataclasses.fields(TrainConfig) if "int" in str(types[f.name]) or "float" in str(types[f.name])
    ]


def as_option(name: str, x: Any) -> Any:
    """`x` placed where option `name` takes its number(s)."""
    if name == "env_weights":
        return [1.0, x]
    if name == "adam_betas":
        return [0.9, x]
    if name == "ray_worker_resources":
        return {"rollout_node": x}
    return x


def test_every_numeric_option_has_its_documented_range_here():
    assert sorted(RANGES) == sorted(numeric_options())


@st.composite
def bad_values(draw: st.DrawFn) -> tuple[str, Any]:
    """An option and a value outside its range: nan, inf, -inf, or a number past either end."""
    name = draw(st.sampled_from(sorted(RANGES)))
    r = RANGES[name]
    candidates = [st.just(math.nan), st.just(INF), st.just(-INF)]
    if r.integer:
        candidates.append(st.integers(max_value=math.ceil(r.lo) - 1))
        if r.hi < INF:
            candidates.append(st.integers(min_value=int(r.hi) + (0 if r.hi_open else 1)))
    else:
        candidates.append(st.floats(max_value=r.lo, exclude_max=not r.lo_open, allow_nan=False, allow_infinity=False))
        if r.hi < INF:
            candidates.append(
                st.floats(min_value=r.hi, exclude_min=not r.hi_open, allow_nan=False, allow_infinity=False)
            )
        if r.also:  # between the single values and the range (tis_cap in (0, 1))
            candidates.append(st.floats(min_value=max(r.also), max_value=r.lo, exclude_min=True, exclude_max=True))
    # below the range lie the single valid values too (tis_cap's 0): never draw one of those
    x = draw(st.one_of(candidates).filter(lambda v: not r.holds(v) or (isinstance(v, float) and not math.isfinite(v))))
    return name, x


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(bad_values())
def test_nan_inf_and_out_of_range_values_are_refused_naming_the_option(option: tuple[str, Any]):
    name, x = option
    with pytest.raises(ConfigError) as caught:
        make_config("tiny-cpu", {name: as_option(name, x), **NEEDS.get(name, {})})
    message = str(caught.value)
    assert f"{name}=" in message, message
    assert "\n" not in message


@st.composite
def good_values(draw: st.DrawFn) -> tuple[str, Any]:
    name = draw(st.sampled_from(sorted(RANGES)))
    r = RANGES[name]
    hi = min(r.hi, 10**6) if r.accept_hi is None else r.accept_hi
    if r.integer:
        x = draw(st.integers(min_value=int(r.lo) + int(r.lo_open), max_value=int(hi) - int(r.hi_open and hi == r.hi)))
    else:
        in_range = st.floats(
            min_value=r.lo,
            max_value=hi,
            exclude_min=r.lo_open,
            exclude_max=r.hi_open and hi == r.hi,
            allow_nan=False,
            allow_infinity=False,
        )
        x = draw(st.one_of(in_range, *(st.just(v) for v in r.also)))
    return name, x


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(good_values())
def test_values_inside_the_documented_range_are_accepted(option: tuple[str, Any]):
    name, x = option
    config = make_config("tiny-cpu", {name: as_option(name, x), **NEEDS.get(name, {})})
    assert getattr(config, name) is not None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"clip_eps": "nan"}, "clip_eps=nan must be finite"),
        ({"kl_coef": math.nan}, "kl_coef=nan must be finite"),
        ({"lr": "inf"}, "lr=inf must be finite"),
        ({"env_weights": [1.0, math.inf], "env_ids": ["KuhnPoker-v1", "TicTacToe-v0"]}, "env_weights=[1.0, inf]"),
        ({"env_kwargs": {"KuhnPoker-v1": {"invalid_move_penalty": -math.inf}}}, "env_kwargs="),
        ({"env_kwargs": {"KuhnPoker-v1": {"invalid_move_penalty": math.nan}}}, "must be finite"),
        ({"adam_betas": [2, 3]}, "adam_betas=[2.0, 3.0] must be two numbers in [0, 1)"),
        ({"weight_decay": -1}, "weight_decay=-1.0 must be >= 0"),
        ({"seed": 2**70}, f"seed={2**70} must be an integer in [0, 2**32)"),
        ({"max_new_tokens": 10**9}, f"max_new_tokens=1000000000 is over the cap of {MAX_NEW_TOKENS_CAP} tokens"),
    ],
)
def test_the_values_the_audit_sent_are_refused_in_one_line(overrides, message):
    with pytest.raises(ConfigError, match=None) as caught:
        make_config("tiny-cpu", overrides)
    assert message in str(caught.value)
