"""Checks against this machine refuse, before anything loads, what used to fail after the model loaded (issue 28,
items 10 and 11): each a one-line `ConfigError` naming the option or file and the fix."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spiral_train.cli import main
from spiral_train.config import ConfigError, make_config
from spiral_train.config.run_checks import check_run_dir, check_training_start, missing_extras


def model_folder(path: Path, positions: int = 512, chat_template: str | None = None) -> Path:
    """A model folder as the run checks read it: config.json and tokenizer_config.json (no weights needed)."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "qwen3", "max_position_embeddings": positions}))
    tokenizer = {"eos_token": "<|im_end|>"} | ({"chat_template": chat_template} if chat_template else {})
    (path / "tokenizer_config.json").write_text(json.dumps(tokenizer))
    return path


def refused(overrides: dict, message: str) -> str:
    with pytest.raises(ConfigError) as caught:
        make_config("tiny-cpu", overrides)
    text = str(caught.value)
    assert message in text, text
    assert "\n" not in text
    return text


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_device_cuda_without_a_gpu_is_refused_at_start(tmp_path, capsys):
    config = make_config("tiny-cpu", {"device": "cuda"})  # a config for another machine (plan) is fine
    with pytest.raises(ConfigError, match=r"device='cuda' but no CUDA GPU is visible here; use --device cpu"):
        check_training_start(config, tmp_path / "run")
    assert main(["--device", "cuda", "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # the memory plan, first, may say it was skipped
    assert err[-1] == "spiral-train: error: device='cuda' but no CUDA GPU is visible here; use --device cpu (or auto)"
    assert not (tmp_path / "run").exists()


def test_every_option_that_needs_an_extra_names_it_on_a_machine_without_extras():
    """On a machine where nothing optional is installed, each option that needs a package is named with the
    package and the install command, at start: `--generator vllm` used to build a tiny model for minutes first."""
    config = make_config("tiny-cpu", {})
    wanting = dataclasses.replace(
        config, generator="vllm", lora_rank=4, ray_workers=2, eval_reasoning=["gym:basic_arithmetic:5"],
        tensorboard=True, wandb=True,
    )  # fmt: skip
    lines = missing_extras(wanting, installed=lambda module: False)
    assert [line.split(" needs the ")[1].split(" package")[0] for line in lines] == [
        "vllm", "peft", "ray", "math_verify", "reasoning_gym", "tensorboard", "wandb",
    ]  # fmt: skip
    assert lines[0].startswith("generator='vllm' needs the vllm package: on CPU: pip install") and "'hf'" in lines[0]
    assert missing_extras(config, installed=lambda module: False) == []  # the default run needs no extra
    assert missing_extras(wanting, installed=lambda module: True) == []


def test_the_vllm_generator_without_vllm_is_refused_before_any_model_is_built(tmp_path):
    """The real check in an interpreter that cannot find vllm (its path finder is told to miss it), on a machine
    with or without vLLM: one line, exit 2, no tiny model built."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    # the path finder answers "no such module" for vllm, as it does in an interpreter without it
    (shadow / "sitecustomize.py").write_text(
        "import importlib.machinery as m\n"
        "found = m.PathFinder.find_spec\n"
        "def find_spec(name, path=None, target=None):\n"
        "    return None if name.split('.')[0] == 'vllm' else found(name, path, target)\n"
        "m.PathFinder.find_spec = find_spec\n"
    )
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": f"{shadow}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env["SPIRAL_CACHE"] = str(cache)
    command = [sys.executable, "-m", "spiral_train.cli", "--generator", "vllm", "--run-dir", str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("spiral-train: error: generator='vllm' needs the vllm package: on CPU: pip install"), last
    assert not cache.exists() or not any(cache.rglob("config.json"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("package", ["tensorboard", "wandb"])
def test_logging_to_a_package_that_is_not_installed_is_refused(package):
    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed here")
    refused({package: True}, f"{package}=True needs the {package} package: pip install {package}")


def test_an_opponent_folder_that_holds_no_checkpoint_is_refused(tmp_path):
    (tmp_path / "notes").mkdir()
    refused({"opponent": str(tmp_path / "notes")}, "is a folder but no checkpoint")
    model_folder(tmp_path / "step_4" / "model")  # a run's checkpoint: its model/ subfolder
    assert make_config("tiny-cpu", {"opponent": str(tmp_path / "step_4")}).opponent == str(tmp_path / "step_4")


def test_template_chat_needs_a_tokenizer_with_a_chat_template(tmp_path):
    refused({"template": "chat"}, "template='chat' but the tiny model has no chat template")
    plain = model_folder(tmp_path / "plain")
    refused({"template": "chat", "model": str(plain)}, f"template='chat' but {plain} has no chat template")
    chat = model_folder(tmp_path / "chat", chat_template="{{ messages }}")
    assert make_config("tiny-cpu", {"template": "chat", "model": str(chat)}).template == "chat"


def test_answers_longer_than_the_model_positions_are_refused(tmp_path):
    refused({"max_new_tokens": 5000}, "max_new_tokens=5000 does not fit the model: the tiny model gives 4096")
    folder = model_folder(tmp_path / "m", positions=512)
    refused({"model": str(folder), "max_new_tokens": 512}, "max_new_tokens=512 does not fit the model")
    assert make_config("tiny-cpu", {"model": str(folder), "max_new_tokens": 256}).max_new_tokens == 256


def test_a_corrupt_config_json_is_named(tmp_path):
    folder = model_folder(tmp_path / "m")
    (folder / "config.json").write_text('{"max_position_embeddings": 5')
    refused({"model": str(folder)}, f"{folder / 'config.json'} does not read as JSON")


def test_a_missing_reasoning_benchmark_is_named_not_blamed_on_the_model(tmp_path, capsys):
    missing = tmp_path / "nope.jsonl"
    refused({"eval_reasoning": [str(missing)]}, f"eval_reasoning: '{missing}' is neither a file or folder")
    assert main(["--eval-reasoning", str(missing), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "eval_reasoning:" in err and "could not load the model" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_run_dir_that_is_a_file_is_named(tmp_path, capsys):
    path = tmp_path / "run"
    path.write_text("not a folder")
    with pytest.raises(ConfigError, match=f"run folder {path} is a file, not a folder"):
        check_run_dir(path)
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_run_dir(path / "inside")
    assert main(["--run-dir", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"run folder {path} is a file" in err and "could not load the model" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_run_dir_is_named(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="is not writable here"):
            check_run_dir(folder / "run")
    finally:
        folder.chmod(0o700)
