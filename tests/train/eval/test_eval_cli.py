"""`spiral-eval games`: a run's checkpoints against each other, the scripted opponents and the exploiter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from spiral_train.eval.cli import main


def test_spiral_eval_games_plays_two_checkpoints_of_a_run(quick_model, tmp_path, capsys, monkeypatch):
    """... and, with no --out, writes its metrics into the run (RUN/eval/step_N/games.json), not the cwd."""
    from helpers import small_config

    from spiral_train.trainer import Trainer

    run_dir = Trainer(small_config(quick_model, 2), tmp_path / "run").run()
    newer, older = run_dir / "checkpoints" / "step_000002", run_dir / "checkpoints" / "step_000001"
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    args = ["games", "--model", str(newer), "--vs", str(older), "--games", "8", "--probe-samples", "4"]
    args += ["--env-kwargs", '{"KuhnPoker-v1": {"num_rounds": 1}}']
    assert main(args) == 0
    table = capsys.readouterr().out
    out = run_dir / "eval" / "step_000002" / "games.json"
    assert f"all metrics: {out}" in table and not any(elsewhere.iterdir())
    metrics = json.loads(out.read_text())["metrics"]
    for opponent in ("random", "strong", "exploiter", str(older)):
        base = f"eval/KuhnPoker-v1/{opponent}/"
        assert metrics[base + "games"] == 8
        rates = [metrics[base + r] for r in ("win_rate", "draw_rate", "loss_rate")]
        assert sum(rates) == pytest.approx(1.0)
        assert metrics[base + "win_rate_lo"] <= metrics[base + "win_rate"] <= metrics[base + "win_rate_hi"]
        assert f"| KuhnPoker-v1 | {opponent} | 8 |" in table
    assert metrics["eval/KuhnPoker-v1/strategy/nash_conv"] >= 0.0
    assert "KuhnPoker-v1/strategy/nash_conv" in table and "KuhnPoker-v1/match/nash_conv" in table


def test_spiral_eval_games_names_a_bad_opponent(capsys):
    assert main(["games", "--model", "x", "--opponents", "randm"]) == 2
    assert "choose among random, strong, exploiter (models go in --vs)" in capsys.readouterr().err


GOOD = {"id": "p1", "problem": "What is 1 + 1?", "answer": "2"}
SAVED = {**GOOD, "responses": ["\\boxed{2}"]}
MODEL = ["--model", "{tmp}/stub"]  # {"config.json": "{}"}: passes the path check, loads as no model at all
MALFORMED = {
    # name: (files the test writes, arguments, the one-line error's text)
    "responses-a-string": (
        {"out.jsonl": [{**GOOD, "responses": "\\boxed{2}"}]},
        ["reasoning", "--responses", "{tmp}/out.jsonl"],
        "out.jsonl:1: field 'responses' is '\\\\boxed{2}' (a str); give a non-empty list of strings",
    ),
    "responses-empty": (
        {"out.jsonl": [{**GOOD, "responses": []}]},
        ["reasoning", "--responses", "{tmp}/out.jsonl"],
        "out.jsonl:1: field 'responses' is [] (a list); give a non-empty list of strings",
    ),
    "responses-counts-differ": (
        {"out.jsonl": [SAVED, {**SAVED, "responses": ["a", "b"]}]},
        ["reasoning", "--responses", "{tmp}/out.jsonl"],
        "out.jsonl:2: field 'responses' holds 2 responses, but",
    ),
    "choices-a-dict": (
        {"out.jsonl": [{**SAVED, "answer": "A", "choices": {"A": "red"}}]},
        ["reasoning", "--responses", "{tmp}/out.jsonl"],
        "out.jsonl:1: field 'choices' is {'A': 'red'} (a dict); give a non-empty list of options",
    ),
    "choices-a-string": (
        {"b.jsonl": [{**GOOD, "answer": "A", "choices": "ABC"}]},
        ["reasoning", *MODEL, "--benchmark", "{tmp}/b.jsonl"],
        "b.jsonl:1: field 'choices' is 'ABC' (a str); give a non-empty list of options",
    ),
    "line-a-number": (
        {"out.jsonl": [SAVED, 3]},
        ["reasoning", "--responses", "{tmp}/out.jsonl"],
        "out.jsonl:2: 3 (an int) is not an object with fields",
    ),
    "line-null": (
        {"b.jsonl": [GOOD, None]},
        ["reasoning", *MODEL, "--benchmark", "{tmp}/b.jsonl"],
        "b.jsonl:2: null is not an object with fields",
    ),
    "line-a-string": (
        {"out.jsonl": ['"hello"']},
        ["reasoning", "--responses", "{tmp}/out.jsonl"],
        "out.jsonl:1: 'hello' (a str) is not an object with fields",
    ),
    "no-problem": (
        {"b.jsonl": [GOOD, {"answer": "2"}]},
        ["reasoning", *MODEL, "--benchmark", "{tmp}/b.jsonl"],
        "b.jsonl:2: no 'problem' field (read as any of problem, question",
    ),
    "no-answer": (
        {"out.jsonl": [{"problem": "q", "responses": ["x"]}]},
        ["reasoning", "--responses", "{tmp}/out.jsonl"],
        "out.jsonl:1: no 'answer' field",
    ),
    "answer-a-dict": (
        {"b.jsonl": [{**GOOD, "answer": {"value": 2}}]},
        ["reasoning", *MODEL, "--benchmark", "{tmp}/b.jsonl"],
        "b.jsonl:1: field 'answer' is {'value': 2} (a dict); give a string or a number",
    ),
    "bad-json-line-2": (
        {"out.jsonl": [SAVED, '{"problem": "q", oops}']},
        ["reasoning", "--responses", "{tmp}/out.jsonl"],
        "out.jsonl:2: not valid JSON (Expecting property name enclosed in double quotes at column 18)",
    ),
    "lone-surrogate": (
        {"b.jsonl": ['{"problem": "x \\ud800", "answer": "2"}']},
        ["reasoning", *MODEL, "--benchmark", "{tmp}/b.jsonl"],
        "b.jsonl:1: field 'problem' holds '\\ud800' at character 2, a lone surrogate",
    ),
    "limit-0": (
        {"b.jsonl": [GOOD]},
        ["reasoning", *MODEL, "--benchmark", "{tmp}/b.jsonl", "--limit", "0"],
        "--limit 0: give a number of problems >= 1, or leave it out for all of them",
    ),
    "limit-negative": (
        {"b.jsonl": [GOOD]},
        ["reasoning", *MODEL, "--benchmark", "{tmp}/b.jsonl", "--limit", "-1"],
        "--limit -1: give a number of problems >= 1",
    ),
    "grading-timeout-inf": (
        {"b.jsonl": [GOOD]},
        ["reasoning", *MODEL, "--benchmark", "{tmp}/b.jsonl", "--grading-timeout", "inf"],
        "grading timeout inf: give seconds per math-verify comparison, > 0 and <= 3600",
    ),
    "grading-timeout-nan": (
        {"out.jsonl": [SAVED]},
        ["reasoning", "--responses", "{tmp}/out.jsonl", "--grading-timeout", "nan"],
        "grading timeout nan: give seconds per math-verify comparison",
    ),
    "responses-a-folder": (
        {},
        ["reasoning", "--responses", "{tmp}"],
        "is a folder: --responses takes a spiral-eval output file",
    ),
    "gym-count-not-a-number": (
        {},
        ["reasoning", *MODEL, "--benchmark", "gym:basic_arithmetic:abc"],
        "'gym:basic_arithmetic:abc': COUNT 'abc' is not a whole number >= 1; write gym:NAME or gym:NAME:COUNT",
    ),
    "vs-missing": (
        {"model/config.json": "{}"},
        ["games", "--model", "{tmp}/model", "--vs", "{tmp}/no-such-checkpoint"],
        "--vs {tmp}/no-such-checkpoint: no such folder; give a run's checkpoint",
    ),
    "population-anchors-alone": (
        {},
        ["population", "--anchors", "random", "strong", "--out", "{tmp}/pop"],
        "spiral-eval population rates models: give --run RUN (its checkpoints) or --models DIR",
    ),
    "population-models-missing": (
        {},
        ["population", "--models", "{tmp}/gone"],
        "--models {tmp}/gone: no such folder",
    ),
    # paths: each named with the fix, before any model loads
    "games-model-missing": (
        {},
        ["games", "--model", "{tmp}/nope"],
        "--model {tmp}/nope: no such folder; give a run's checkpoint (runs/X/checkpoints/step_N) or a model folder",
    ),
    "reasoning-model-missing": (
        {"b.jsonl": [GOOD]},
        ["reasoning", "--model", "{tmp}/nope", "--benchmark", "{tmp}/b.jsonl"],
        "--model {tmp}/nope: no such folder; give a run's checkpoint",
    ),
    "model-holds-no-model": (
        {"empty/notes.txt": "x"},
        ["games", "--model", "{tmp}/empty"],
        "--model {tmp}/empty: model='{tmp}/empty' holds no model (no config.json",
    ),
    "pruned-checkpoint": (
        {"run/checkpoints/step_000075/model/config.json": "{}", "run/checkpoints/step_000080/model/config.json": "{}"},
        ["games", "--model", "{tmp}/run/checkpoints/step_000080", "--vs", "{tmp}/run/checkpoints/step_000040"],
        "--vs {tmp}/run/checkpoints/step_000040: no such checkpoint; {tmp}/run/checkpoints holds step_000075, "
        "step_000080 (keep_checkpoints prunes older ones): give one of those",
    ),
    "pruned-checkpoint-model-folder": (
        {"run/checkpoints/step_000080/model/config.json": "{}"},
        ["reasoning", "--model", "{tmp}/run/checkpoints/step_000040/model", "--benchmark", "gym:chain_sum:5"],
        "no such checkpoint; {tmp}/run/checkpoints holds step_000080 (keep_checkpoints",
    ),
    "vs-a-named-opponent": (
        {},
        ["games", *MODEL, "--vs", "strong"],
        "--vs strong: a named opponent goes in --opponents; --vs takes model folders",
    ),
    "run-missing": ({}, ["population", "--run", "{tmp}/nope"], "--run {tmp}/nope: no such folder; give a run folder"),
    "run-without-checkpoints": (
        {"run/config.yaml": "{}"},
        ["population", "--run", "{tmp}/run"],
        "--run {tmp}/run has no checkpoints/step_N folders: give a run folder",
    ),
    "data-dir-missing": (
        {},
        ["reasoning", *MODEL, "--benchmark", "math500", "--data-dir", "{tmp}/nope"],
        "--data-dir {tmp}/nope: no such folder; give the folder of the benchmark files",
    ),
    "out-a-folder": (
        {"results/x": "x"},
        ["games", *MODEL, "--out", "{tmp}/results"],
        "--out {tmp}/results is a folder",
    ),
    "population-out-a-file": (
        {"ratings": "x"},
        ["population", "--models", "{tmp}/stub", "--out", "{tmp}/ratings"],
        "--out {tmp}/ratings is a file: give a folder",
    ),
    "population-one-member": (
        {},
        ["population", "--models", "{tmp}/stub", "--anchors"],
        "a population needs two members or more",
    ),
}
NUMBERS = {
    # every numeric option of every subcommand, out of range: (arguments, the one-line error's text)
    "games": (["games", *MODEL], ["--games", "--probe-samples", "--max-new-tokens", "--top-k", "--top-p"]),
    "reasoning": (
        ["reasoning", *MODEL, "--benchmark", "gym:chain_sum:5"],
        ["--limit", "--samples", "--max-new-tokens", "--batch-size", "--top-k", "--top-p", "--grading-timeout"],
    ),
    "population": (["population", "--models", "{tmp}/stub"], ["--games", "--every"]),
}
BAD = {  # a value each refuses, and the words of its error
    "--games": ("-4", "--games -4: give a whole number >= 1"),
    "--probe-samples": ("-1", "--probe-samples -1: give a whole number >= 0"),
    "--max-new-tokens": ("0", "--max-new-tokens 0: give a whole number >= 1"),
    "--top-k": ("-1", "--top-k -1: give a whole number >= 0"),
    "--top-p": ("0", "--top-p 0.0: give a number in (0, 1]"),
    "--limit": ("0", "--limit 0: give a number of problems >= 1"),
    "--samples": ("0", "--samples 0: give a whole number >= 1"),
    "--batch-size": ("0", "--batch-size 0: give a whole number >= 1"),
    "--grading-timeout": ("-1", "grading timeout -1.0: give seconds per math-verify comparison"),
    "--every": ("0", "--every 0: give k >= 1"),
}
for command, (prefix, options) in NUMBERS.items():
    for option in options:
        MALFORMED[f"{command}{option}"] = ({}, [*prefix, option, BAD[option][0]], BAD[option][1])
    for value in ("-1", "nan", "inf"):
        MALFORMED[f"{command}--temperature={value}"] = (
            {},
            [*prefix, "--temperature", value],
            f"--temperature {float(value)}: give a finite number >= 0",
        )


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_input_is_one_line_naming_file_line_field_and_fix(tmp_path, capsys, case):
    """Exit 2 with one line on stderr, before anything is printed or loaded (the --model given holds an empty
    config.json, so a check made after loading would fail in transformers instead)."""
    files, argv, message = MALFORMED[case]
    for name, content in {"stub/config.json": "{}", **files}.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        else:
            path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in content))
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err.startswith("spiral-eval: error: ") and "\n" not in err, err
    assert message.replace("{tmp}", str(tmp_path)) in err


def test_a_comparison_that_runs_out_of_time_is_graded_timeout_and_counted(tmp_path, capsys):
    pytest.importorskip("math_verify")
    explosive = "\\boxed{2^{2^{2^{2^{2^{2^{2^{2^{100}}}}}}}}}"
    saved = [{**GOOD, "answer": "1", "responses": [explosive, "\\boxed{1}"]}, {**GOOD, "responses": ["\\boxed{2}"] * 2}]
    path = tmp_path / "out.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in saved))
    assert main(["reasoning", "--responses", str(path), "--grading-timeout", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["timeouts"] == 1 and summary["accuracy"] == pytest.approx(0.75)

    from spiral_train.reasoning.benchmarks import regrade
    from spiral_train.reasoning.grading import Grader

    with Grader(1.0) as grader:
        rows = regrade(path, grader)
    assert rows[0]["grading"] == ["timeout", "string"] and rows[0]["correct"] == [False, True]


NO_MODEL_LOADED = """
import sys
from spiral_train.eval.cli import main
code = main(sys.argv[1:])
heavy = sorted({"torch", "transformers", "vllm"} & set(sys.modules))
print("loaded:", heavy)
sys.exit(code)
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["games", "--model", "{tmp}/nope"],
        ["games", "--model", "{tmp}/run/checkpoints/step_000080", "--games", "-4"],
        ["games", "--model", "{tmp}/run/checkpoints/step_000080", "--vs", "{tmp}/run/checkpoints/step_000040"],
        ["reasoning", "--model", "{tmp}/nope", "--benchmark", "gym:chain_sum:5"],
        ["reasoning", "--model", "{tmp}/run/checkpoints/step_000080", "--benchmark", "gsm8k", "--data-dir", "{tmp}/x"],
        ["population", "--run", "{tmp}/nope"],
        ["population", "--run", "{tmp}/run", "--games", "0"],
    ],
    ids=["model", "games", "vs", "reasoning-model", "data-dir", "run", "population-games"],
)
def test_a_bad_input_stops_before_torch_or_transformers_is_imported(tmp_path, argv):
    """The real `spiral-eval` in a fresh interpreter: exit 2, one line on stderr, and neither torch nor transformers
    was imported, so no model can have started to load (the issue's `--model /nope` printed a 42-line
    transformers traceback; `reasoning` said it only after ~25 s of imports)."""
    import os
    import subprocess
    import sys

    config = tmp_path / "run" / "checkpoints" / "step_000080" / "model" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text("{}")
    root = str(Path(__file__).resolve().parents[3])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    done = subprocess.run(
        [sys.executable, "-c", NO_MODEL_LOADED, *args], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    err = done.stderr.strip()
    assert err.startswith("spiral-eval: error: ") and "\n" not in err, err
    assert done.stdout.strip() == "loaded: []"
    assert not (tmp_path / "eval").exists()


def test_outputs_go_into_the_run_of_a_checkpoint_else_into_eval():
    from spiral_train.eval.inputs import default_out

    assert default_out("runs/X/checkpoints/step_000080") == Path("runs/X/eval/step_000080")
    assert default_out("runs/X/checkpoints/step_000080/model") == Path("runs/X/eval/step_000080")
    assert default_out("/models/Qwen3-4B-Base") == Path("eval")
    assert default_out("Qwen/Qwen3-4B-Base") == Path("eval")


def test_a_hub_id_that_cannot_be_fetched_is_one_line(tmp_path):
    """A name shaped like a hub id passes the start checks (it may be fetched); when transformers cannot fetch it,
    the error is one line naming the option and the model, not a traceback."""
    import os
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[3])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "spiral_train.eval.cli", "games", "--model", "no-such-org/no-such-model"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("spiral-eval: error: --model no-such-org/no-such-model: could not load it (")
    assert "Traceback" not in done.stderr and not (tmp_path / "eval").exists()


def test_reasoning_names_each_missing_package_before_loading_a_model(quick_model):
    """On a machine with none of the optional packages, `reasoning` names what its arguments need, at start."""
    from spiral_train.eval.cli import build_parser
    from spiral_train.eval.inputs import missing_reasoning_packages

    argv = ["reasoning", "--model", str(quick_model), "--benchmark", "gym:basic_arithmetic:5", "--generator", "vllm"]
    lines = missing_reasoning_packages(build_parser().parse_args(argv), installed=lambda module: False)
    assert [line.split(" needs the ")[0] for line in lines] == [
        "grading", "--generator vllm", "--benchmark gym:basic_arithmetic:5",
    ]  # fmt: skip
    assert 'pip install -e ".[eval]"' in lines[0] and "generator='hf'" in lines[1]
    plain = build_parser().parse_args(["reasoning", "--model", str(quick_model), "--benchmark", "b.jsonl"])
    assert [line.split(" needs")[0] for line in missing_reasoning_packages(plain, lambda m: False)] == ["grading"]
    assert missing_reasoning_packages(build_parser().parse_args(argv), installed=lambda module: True) == []
