"""`spiral-train` rejects bad options at start, naming the option and what it accepts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from spiral_train.cli import build_parser, config_from_args, main
from spiral_train.config import ConfigError, make_config


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rae", "sometimes"], "rae='sometimes' is not allowed; choose one of ['ema', 'batch', 'none']"),
        (["--loss-aggregation", "max"], "loss_aggregation='max' is not allowed"),
        (["--games-per-step", "0"], "games_per_step=0 must be a positive integer"),
        (["--rae-decay", "1.5"], "rae_decay=1.5 must be in [0, 1)"),
        (["--lr", "-1"], "lr=-1.0 must be > 0"),
        (["--temperature", "0"], "temperature=0.0 must be > 0"),
        (["--opponent", "grandmaster"], "opponent='grandmaster' must be one of ['self', 'random', 'strong']"),
        (["--eval-opponents", "random", "god"], "eval_opponents='god' is not allowed"),
        (["--env-weights", "1", "2"], "env_weights=[1.0, 2.0] must give one weight >= 0 per env id"),
        (["--steps", "ten"], "steps='ten' must be an integer"),
        (["--history", "past"], "history='past' is not allowed; choose one of ['full', 'current']"),
        (["--rae", "batch", "--state-baseline"], 'state_baseline=True needs rae="ema" or "none"'),
        (
            ["--preset", "huge"],
            "preset='huge' is unknown; choose one of ['tiny-cpu', 'paper-qwen3-4b', 'paper-qwen3-4b-lora-1gpu']",
        ),
        (["--top-p", "0"], "top_p=0.0 must be in (0, 1] (1.0 turns nucleus sampling off)"),
        (["--top-k", "-2"], "top_k=-2 must be >= 0"),
        (["--eval-reasoning-samples", "0"], "eval_reasoning_samples=0 must be a positive integer"),
        (["--ray-worker-resources", '{"CPU": 1}'], "ray_worker_resources={'CPU': 1}: each entry must be a custom"),
    ],
)
def test_bad_options_fail_at_start_with_the_option_named(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_model_folder_that_does_not_exist_is_named_and_leaves_no_run_folder(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["--model", str(tmp_path / "no-such-model"), "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert f"model='{tmp_path / 'no-such-model'}' is not a folder here" in err
    assert len(err.strip().splitlines()) == 1
    assert not run_dir.exists()


def test_a_folder_that_holds_no_model_is_named_and_leaves_no_run_folder(tmp_path, capsys):
    (tmp_path / "empty-model").mkdir()
    run_dir = tmp_path / "run"
    assert main(["--model", str(tmp_path / "empty-model"), "--run-dir", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"model='{tmp_path / 'empty-model'}' holds no model (no config.json" in err
    assert not run_dir.exists()


def test_a_game_textarena_cannot_build_is_a_one_line_error(capsys):
    pytest.importorskip("textarena")
    assert main(["--env-ids", "textarena/Debate-v0"]) == 2
    err = capsys.readouterr().err
    assert "TextArena could not build textarena/Debate-v0: ValueError: OpenRouter API key not found" in err


def test_a_misspelt_game_option_is_a_one_line_error(capsys):
    assert main(["--env-kwargs", '{"KuhnPoker-v1": {"num_round": 1}}']) == 2
    assert "KuhnPoker-v1 has no option 'num_round' (did you mean 'num_rounds'?)" in capsys.readouterr().err


def test_unknown_option_in_a_config_file_is_named(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text("stpes: 10\n")
    assert main(["--config", str(path)]) == 2
    assert "unknown option 'stpes' (did you mean 'steps'?)" in capsys.readouterr().err


def test_unknown_env_id_is_rejected_before_training(capsys):
    assert main(["--env-ids", "KuhnPoker-v2"]) == 2
    assert "unknown env id 'KuhnPoker-v2'; known ids, closest first: KuhnPoker-v1" in capsys.readouterr().err


def test_flags_override_the_config_file_which_overrides_the_preset(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("steps: 7\nlr: 0.01\nenv_ids: [TicTacToe-v0, KuhnPoker-v1]\n")
    args = build_parser().parse_args(["--config", str(path), "--lr", "1e-4", "--no-progress"])
    config, _, _ = config_from_args(args)
    assert (config.steps, config.lr, config.progress) == (7, 1e-4, False)
    assert config.env_ids == ["TicTacToe-v0", "KuhnPoker-v1"]


def test_paper_preset_has_the_paper_hyperparameters():
    config = make_config("paper-qwen3-4b")  # validation reads the config; it needs no GPU
    assert (config.lr, config.temperature, config.games_per_step, config.steps) == (1e-6, 1.0, 128, 400)
    assert config.rae == "ema" and config.rae_decay == 0.95
    assert config.game_kwargs()["KuhnPoker-v1"] == {"history": "full"}  # the paper shows every past move
    assert (config.state_baseline, config.kl_coef, config.lr_schedule) == (False, 0.0, "constant")  # RAE alone
    # as spiral-rl/spiral's run.sh runs it on oat's defaults: 2 PPO epochs, Dr. GRPO sums, zero advantages
    # filtered, evaluation sampled at temperature 0.6 and top-p 0.95 while training samples at 1.0 and 1.0
    assert (config.num_epochs, config.loss_aggregation, config.drop_zero_advantage) == (2, "seq_sum_const", True)
    assert (config.top_p, config.eval_temperature, config.eval_top_p) == (1.0, 0.6, 0.95)
    assert (config.max_new_tokens, config.eval_reasoning_max_new_tokens, config.eval_every) == (4096, 4096, 16)
    assert (config.generator, config.vllm_max_model_len) == ("vllm", 12800)


def test_history_reaches_every_game_unless_its_own_options_say_otherwise():
    config = make_config(
        "tiny-cpu",
        {"env_ids": ["KuhnPoker-v1", "TicTacToe-v0"], "env_kwargs": {"TicTacToe-v0": {"history": "full"}}},
    )
    assert config.game_kwargs() == {"KuhnPoker-v1": {"history": "current"}, "TicTacToe-v0": {"history": "full"}}
    assert make_config("tiny-cpu", {"history": None}).game_kwargs() == {"KuhnPoker-v1": {}}


def test_unknown_flag_is_an_argparse_error():
    done = subprocess.run([sys.executable, "-m", "spiral_train.cli", "--stepz", "3"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "unrecognized arguments: --stepz" in done.stderr


def test_config_error_is_a_value_error():
    with pytest.raises(ConfigError):
        make_config("tiny-cpu", {"num_epochs": 0})


def test_help_explains_every_option_in_groups_in_under_8000_characters():
    """`--help` lists each `TrainConfig` field under its group heading, with its docstring and default, and the
    whole text stays short enough to read (measurements and history belong in docs/training.md)."""
    import dataclasses
    import re

    from spiral_train.config import TrainConfig, option_groups

    groups = option_groups()
    named = [name for _, fields in groups for name, _ in fields]
    assert sorted(named) == sorted(f.name for f in dataclasses.fields(TrainConfig))
    assert {"advantage", "learner", "evaluation"} <= {heading for heading, _ in groups}
    raw = build_parser().format_help()
    assert len(raw) < 8000, f"--help is {len(raw)} characters"
    text = " ".join(raw.split())
    for heading, fields in groups:
        assert f"{heading}:" in text
        for name, doc in fields:
            assert doc, f"TrainConfig.{name} has no docstring"
            flag = r"--(\[no-\])?" + re.escape(name.replace("_", "-")) + " "
            after = text[re.search(flag, text).start() :]
            assert len(doc.split()) >= 2, f"TrainConfig.{name}: a contract, not a word"
            assert doc + " [" in after[:300], name  # the contract, then the default


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"steps: [1\n", "does not read as plain YAML (no !!tags): expected ',' or ']'"),
        (b"steps: !!python/object/apply:os.system [echo hi]\n", "could not determine a constructor for the tag"),
        (b"steps: 3\nmodel: caf\xe9\n", "is not UTF-8 text (byte offset 19); save it as UTF-8 YAML"),
    ],
)
def test_a_config_file_that_does_not_read_is_a_one_line_error_naming_it(tmp_path, capsys, text, message):
    path = tmp_path / "run.yaml"
    path.write_bytes(text)
    assert main(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"spiral-train: error: {path}" in err and message in err
    assert len(err.strip().splitlines()) == 1


def test_a_missing_config_file_is_a_one_line_error_naming_it(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'nope.yaml'}: No such file or directory" in err
    assert len(err.strip().splitlines()) == 1


def test_an_os_error_at_start_blames_the_file_it_names_not_the_model(tmp_path):
    from spiral_train.cli import start_error

    run = tmp_path / "run"
    state = run / "checkpoints" / "step_4" / "state.pt"
    state.parent.mkdir(parents=True)
    with pytest.raises(OSError) as missing:
        state.open("rb")
    text = start_error(missing.value, run, None, resume=True)
    assert text.startswith(f"{state}: No such file or directory; the run folder {run} is incomplete")
    locked = PermissionError(13, "Permission denied", str(run / "config.yaml"))
    assert start_error(locked, run, None, resume=False) == (
        f"{run / 'config.yaml'}: Permission denied; make it writable, or give --run-dir another folder"
    )
    torn = OSError(f"It looks like the config file at '{run}/checkpoints/step_4/model/config.json' is not valid")
    assert start_error(torn, run, None, resume=True).startswith(
        f"could not load the model of the last checkpoint in {run}: It looks like the config file at '{run}/"
    )
    loader = OSError("Can't load tokenizer for '/models/x'.\nMore text")  # transformers names no file
    assert start_error(loader, run, "/models/x", resume=False) == (
        "could not load the model (--model /models/x): Can't load tokenizer for '/models/x'."
    )


def write_metrics(run: Path, text: str) -> None:
    run.mkdir()
    (run / "metrics.jsonl").write_text(text)


def test_plot_leaves_out_a_torn_last_line_and_names_a_bad_line_elsewhere(tmp_path, capsys):
    from spiral_train.metrics import read_metrics

    good = '{"step": 0, "entropy": 1.0}\n{"step": 1, "entropy": 0.9}\n'
    write_metrics(tmp_path / "killed", good + '{"step": 2, "entr')
    assert [r["step"] for r in read_metrics(tmp_path / "killed")] == [0, 1]
    assert main(["plot", str(tmp_path / "killed")]) == 0
    assert (tmp_path / "killed" / "curves.png").exists()
    capsys.readouterr()
    write_metrics(tmp_path / "bad", '{"step": 0}\n{"step": 1, "entr\n{"step": 2}\n')
    assert main(["plot", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert f"spiral-train plot: error: {tmp_path / 'bad' / 'metrics.jsonl'}:2: not a JSON record" in err
    assert len(err.strip().splitlines()) == 1


def test_plot_to_a_path_it_cannot_write_or_of_a_folder_without_metrics_is_one_line(tmp_path, capsys):
    write_metrics(tmp_path / "run", '{"step": 0, "entropy": 1.0}\n')
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "curves.png"
    assert main(["plot", str(tmp_path / "run"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"spiral-train plot: error: {out}: Not a directory" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["plot", str(tmp_path)]) == 2
    assert "metrics.jsonl does not exist" in capsys.readouterr().err
