"""The memory plan: devices parsed, parameters counted from config.json alone, the paper presets' verdicts, the
refusal at start, and the plan's update peak against the measured peak of one real `Learner.update` on CPU."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from spiral_train.cli import main
from spiral_train.config import ConfigError, make_config
from spiral_train.models.random_model import model_config
from spiral_train.plan import DeviceError, parse_devices, plan_run
from spiral_train.plan.calibration import calibration_config, measured_update_peak, random_qwen3, synthetic_turns
from spiral_train.plan.shapes import model_shape, read_config

QWEN3_4B = model_config("Qwen3-4B")  # Qwen/Qwen3-4B-Base's config.json (tests/train/plan/test_rehearsal.py checks it)
QWEN3_06B = model_config("Qwen3-0.6B")
QWEN3_06B_PARAMS = 596_049_920  # Qwen3-0.6B-Base, tied embeddings
ONE_PROCESS = {"ray_workers": 0, "ray_learners": 1, "ray_learner_strategy": "ddp"}
ONE_GPU_FULL = ["--ray-workers", "0", "--ray-learners", "1", "--ray-learner-strategy", "ddp"]


@pytest.fixture(scope="module")
def qwen3_4b(tmp_path_factory):
    """A folder holding only Qwen3-4B-Base's config.json: the plan reads no weights."""
    folder = tmp_path_factory.mktemp("qwen3-4b")
    (folder / "config.json").write_text(json.dumps(QWEN3_4B))
    return str(folder)


@pytest.fixture(scope="module")
def qwen3_06b(tmp_path_factory):
    folder = tmp_path_factory.mktemp("qwen3-0.6b")
    (folder / "config.json").write_text(json.dumps(QWEN3_06B))
    return str(folder)


@pytest.mark.parametrize(
    ("text", "kind", "count", "capacity"),
    [
        ("8x80GB", "cuda", 8, 80 * 10**9),
        ("1x80GB", "cuda", 1, 80 * 10**9),
        ("2x24GiB", "cuda", 2, 24 * 2**30),
        ("80GB", "cuda", 1, 80 * 10**9),
        ("cpu:24GB", "cpu", 1, 24 * 10**9),
    ],
)
def test_devices_parse(text, kind, count, capacity):
    devices = parse_devices(text)
    assert (devices.kind, devices.count, devices.capacity) == (kind, count, capacity)


def test_a_bad_devices_string_fails_at_start_naming_the_format():
    with pytest.raises(DeviceError, match="8x80GB"):
        parse_devices("eight GPUs")
    with pytest.raises(ConfigError, match="devices='8x80XB'"):
        make_config("tiny-cpu", {"devices": "8x80XB"})


def test_parameters_are_counted_from_config_json_alone(qwen3_4b, qwen3_06b):
    """Qwen3-4B: 4,022,468,096 parameters (the tied head counted once); LoRA's count is peft's."""
    import torch
    from transformers import AutoModelForCausalLM

    from spiral_train.models import lora

    config, source = read_config(qwen3_4b)
    shape = model_shape(config)
    assert source.endswith("config.json") and shape.tied
    assert (shape.params, shape.trainable, shape.vocab, shape.layers) == (4_022_468_096, 4_022_468_096, 151936, 36)
    small, _ = read_config(qwen3_06b)
    assert model_shape(small).params == QWEN3_06B_PARAMS
    for rank, targets in ((16, ["all-linear"]), (8, ["q_proj", "v_proj"])):
        with torch.device("meta"):
            peft_model = lora.wrap(AutoModelForCausalLM.from_config(small), rank, 32.0, 0.0, targets, qwen3_06b)
        counted = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
        assert model_shape(small, rank, tuple(targets)).trainable == counted


def test_the_paper_preset_fits_eight_80gb_gpus_as_fsdp_learners_beside_rollout_workers(qwen3_4b):
    plan = plan_run(make_config("paper-qwen3-4b", {"model": qwen3_4b}), "8x80GB")
    assert plan.fits, plan.table()
    holders = [h for d in plan.devices for h in d.holders]
    assert sum(h.startswith("learner rank") for h in holders) == 4
    assert sum(h.startswith("rollout worker") for h in holders) == 4
    learner = plan.update_peak_bytes(0)
    assert 25e9 < learner < 60e9  # a quarter of 64 GB of fp32 state, bf16 copies, checkpoints, logits
    worker = next(d for d in plan.devices if any(h.startswith("rollout") for h in d.holders))
    assert worker.columns[0].rows["engine weights"] == 2 * 4_022_468_096  # bf16 on the GPU
    with pytest.raises(ValueError, match="holds no learner"):
        plan.update_peak_bytes(worker.index)


def test_the_one_gpu_lora_preset_fits_one_80gb_gpu(qwen3_4b):
    plan = plan_run(make_config("paper-qwen3-4b-lora-1gpu", {"model": qwen3_4b}), "1x80GB")
    assert plan.fits, plan.table()
    phases = {c["phase"]: c for c in plan.rows(0)}
    assert set(phases) >= {"update", "generation"}  # the engine sleeps during the update
    assert "engine weights" not in phases["update"]["rows"]
    assert phases["update"]["rows"]["optimizer state"] < 1e9  # the adapters' moments only


def test_one_gpu_full_fine_tuning_of_4b_is_refused_with_its_table_and_fixes(qwen3_4b):
    config = make_config("paper-qwen3-4b", {"model": qwen3_4b, **ONE_PROCESS})
    plan = plan_run(config, "1x80GB")
    assert not plan.fits
    update = next(c for c in plan.rows(0) if c["phase"] == "update")
    assert update["rows"]["optimizer state"] == 2 * 4 * 4_022_468_096  # AdamW's two fp32 moments: 32 GB
    assert update["total"] > 80e9
    assert any("--lora-rank 16" in fix.flags for fix in plan.fixes)
    table = plan.table()
    assert "does NOT fit" in table and "--lora-rank 16" in table and "optimizer state" in table


def test_qwen3_06b_full_fine_tuning_fits_one_gpu(qwen3_06b):
    config = make_config("paper-qwen3-4b", {"model": qwen3_06b, **ONE_PROCESS})
    assert plan_run(config, "1x80GB").fits
    assert plan_run(make_config("paper-qwen3-4b", {"model": qwen3_06b}), "8x80GB").fits


def test_a_one_process_run_that_keeps_a_policy_average_counts_it(qwen3_06b):
    def resident(policy_average: str, lora_rank: int = 0) -> dict[str, int]:
        options = {"model": qwen3_06b, **ONE_PROCESS, "policy_average": policy_average, "lora_rank": lora_rank}
        plan = plan_run(make_config("paper-qwen3-4b", options), "1x80GB")
        return next(c for c in plan.rows(0) if c["phase"] == "generation")["rows"]

    assert resident("ema")["policy average"] == 4 * QWEN3_06B_PARAMS  # fp32, every weight trains
    assert "policy average" not in resident("none")  # the paper presets ship the last iterate
    assert 0 < resident("auto", lora_rank=16)["policy average"] < 0.1 * 4 * QWEN3_06B_PARAMS  # the adapters only


def test_a_hub_id_is_planned_offline_from_the_shapes_built_in():
    plan = plan_run(make_config("paper-qwen3-4b"), "8x80GB")  # model: Qwen/Qwen3-4B-Base, not downloaded
    assert plan.fits and plan.shape.params == 4_022_468_096


def test_a_cpu_ray_run_counts_the_drivers_weight_sync_lora_merged_or_not(qwen3_06b):
    """On a CPU host the driver holds its model, the weights it sends the workers in Ray's object store, and
    with LoRA the whole merged state dict it packs (the rehearsal's Ray LoRA run at 0.6B: driver 9.8 GB RSS)."""
    ray_cpu = {"model": qwen3_06b, "device": "cpu", "ray_worker_gpus": 0, "ray_learner_gpus": 0, "ray_workers": 2}
    model = QWEN3_06B_PARAMS * 4
    for lora_rank, merged in ((16, model), (0, 0)):
        config = make_config("paper-qwen3-4b", {**ray_cpu, "ray_learners": 2, "lora_rank": lora_rank})
        (driver,) = [c for c in plan_run(config, "cpu:64GB").rows() if c["process"] == "driver"]
        assert driver["rows"]["weights"] == driver["rows"]["object store"] == model
        assert driver["rows"].get("merged LoRA weights", 0) == merged


def test_a_ray_layout_asking_for_more_gpus_than_there_are_is_refused(qwen3_4b):
    plan = plan_run(make_config("paper-qwen3-4b", {"model": qwen3_4b}), "1x80GB")
    assert not plan.fits and "asked for 8 GPUs" in plan.table()


def test_the_cli_refuses_a_run_that_cannot_fit_before_anything_loads(qwen3_4b, tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["--preset", "paper-qwen3-4b", "--model", qwen3_4b, *ONE_GPU_FULL, "--devices", "1x80GB"]
    assert main([*argv, "--run-dir", str(run_dir)]) == 2
    out, err = capsys.readouterr()
    assert "run folder" not in out and not run_dir.exists()  # refused before the trainer started
    assert "does NOT fit" in err and "--lora-rank 16" in err and "--no-memory-check" in err
    # skipping the check lets the run go on to load the model (a config.json alone: it fails there instead)
    assert main([*argv, "--run-dir", str(run_dir), "--no-memory-check", "--device", "cpu"]) == 2
    assert "could not load the model" in capsys.readouterr().err


def test_plan_subcommand_and_dry_run_exit_0_when_it_fits_and_2_when_not(qwen3_4b, capsys):
    assert main(["plan", "--preset", "paper-qwen3-4b", "--model", qwen3_4b, "--devices", "8x80GB"]) == 0
    assert "verdict: fits" in capsys.readouterr().out
    one_gpu = ["--preset", "paper-qwen3-4b", "--model", qwen3_4b, *ONE_GPU_FULL, "--devices", "1x80GB"]
    assert main([*one_gpu, "--dry-run"]) == 2
    assert "verdict: does NOT fit" in capsys.readouterr().out


def test_the_tiny_default_is_planned_without_building_it(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIRAL_CACHE", str(tmp_path))  # an empty cache: nothing built, nothing to build
    plan = plan_run(make_config("tiny-cpu"), "cpu:8GB")
    assert plan.fits and "not built" in plan.model
    assert not any(tmp_path.iterdir())


CASES = {
    # (hidden, layers, vocabulary, micro-batch, prompt, answer, options): three sizes, with and without
    # gradient checkpointing, LoRA, and the KL reference; the first two with Qwen3's real vocabulary
    "h256-real-vocab": (256, 2, 151936, 4, 40, 24, {}),
    "h256-real-vocab-ckpt": (256, 2, 151936, 4, 40, 24, {"gradient_checkpointing": True}),
    "h512-long": (512, 3, 4096, 8, 100, 28, {}),
    "h512-long-ckpt": (512, 3, 4096, 8, 100, 28, {"gradient_checkpointing": True}),
    "h1024": (1024, 2, 4096, 4, 100, 28, {}),
    "h1024-ckpt": (1024, 2, 4096, 4, 100, 28, {"gradient_checkpointing": True}),
    "h512-lora": (512, 3, 4096, 8, 100, 28, {"lora_rank": 8}),
    "h512-kl": (512, 3, 4096, 8, 100, 28, {"kl_coef": 0.1}),
}


@pytest.mark.learning
@pytest.mark.parametrize("case", list(CASES))
def test_the_planned_update_peak_is_within_15_percent_of_the_measured_one(case, tmp_path):
    """One real `Learner.update` on CPU in fp32 (after a first one, so AdamW's moments exist): the peak of live
    tensor bytes against `update_peak_bytes`; activations are a large share in the long cases."""
    hidden, layers, vocab, batch, prompt, answer, options = CASES[case]
    folder = random_qwen3(tmp_path / "model", hidden, layers, vocab)
    config = calibration_config(str(folder), batch, prompt, answer, **options)
    measured = measured_update_peak(config, synthetic_turns(2 * batch, prompt, answer, vocab))
    planned = plan_run(config, "cpu:64GB").update_peak_bytes(0)
    assert abs(planned - measured) <= 0.15 * measured, (case, planned, measured)
