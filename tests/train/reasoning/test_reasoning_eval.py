"""`spiral-eval reasoning` end to end: a benchmark file the test writes, the tiny model, grading, re-grading.

The tiny model knows only game moves, so its accuracy is near 0: the end-to-end test checks the plumbing
(every problem sampled n times, the input's fields kept, the protocol stored, re-grading gives the same
numbers); the summary's arithmetic is checked on responses written by hand, whose accuracy is known.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("math_verify")
pytest.importorskip("torch")

from spiral_train.eval.cli import main
from spiral_train.metrics import read_metrics
from spiral_train.reasoning.benchmarks import pass_at_k, regrade, summarize
from spiral_train.reasoning.data import load_problems
from spiral_train.reasoning.grading import Grader

PROBLEMS = [
    {"id": "p1", "problem": "What is 1 + 1?", "answer": "2", "level": 1},
    {"id": "p2", "question": "What is half of 1?", "final_answer": "\\frac{1}{2}", "level": 2},
    {"id": "p3", "problem": "Which is a primary colour?", "choices": ["green", "blue", "white"], "answer": "B"},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_the_tiny_model_on_a_small_benchmark_file_and_its_regrade(quick_model, tmp_path, capsys):
    bench = write_jsonl(tmp_path / "tiny_bench.jsonl", PROBLEMS)
    out = tmp_path / "out" / "tiny.jsonl"
    args = ["reasoning", "--model", str(quick_model), "--benchmark", str(bench), "--samples", "3"]
    args += ["--max-new-tokens", "12", "--temperature", "1.0", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["p1", "p2", "p3"]
    assert rows[0]["level"] == 1 and rows[1]["question"] == "What is half of 1?"  # the input record is kept
    assert rows[2]["choices"] == ["green", "blue", "white"]
    for row in rows:
        assert len(row["responses"]) == len(row["extracted"]) == len(row["correct"]) == len(row["cut_off"]) == 3
        assert all(isinstance(r, str) for r in row["responses"])
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["protocol"] == {
        "template": "qwen3",
        "temperature": 1.0,
        "samples": 3,
        "max_new_tokens": 12,
        "seed": 0,
        "top_p": 0.95,
        "top_k": 0,
    }
    assert summary["problems"] == 3 and summary["samples_per_problem"] == 3
    assert 0.0 <= summary["accuracy_lo"] <= summary["accuracy"] <= summary["accuracy_hi"] <= 1.0
    assert set(summary) >= {"pass@1", "pass@2", "cut_off_rate", "no_answer_rate"}
    capsys.readouterr()

    assert main(["reasoning", "--responses", str(out)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["accuracy"] == summary["accuracy"] and again["pass@2"] == summary["pass@2"]


def test_summary_of_responses_whose_grades_are_known(tmp_path):
    saved = [
        {**PROBLEMS[0], "responses": ["\\boxed{2}", "\\boxed{3}"]},  # 1 of 2
        {"id": "p2", "problem": "half of 1?", "answer": "\\frac{1}{2}", "responses": ["\\boxed{0.5}", "\\boxed{1/2}"]},
        {**PROBLEMS[2], "responses": ["\\boxed{A}", "the answer is (C)"]},  # 0 of 2
    ]
    path = write_jsonl(tmp_path / "saved.jsonl", saved)
    with Grader(timeout_s=3.0) as grader:
        rows = regrade(path, grader)
    assert [r["correct"] for r in rows] == [[True, False], [True, True], [False, False]]
    summary = summarize(rows)
    assert summary["accuracy"] == pytest.approx(0.5)  # (1/2 + 1 + 0) / 3
    assert summary["pass@1"] == pytest.approx(0.5) and summary["pass@2"] == pytest.approx(2 / 3)
    assert summary["accuracy_lo"] < 0.5 < summary["accuracy_hi"]
    assert summary["no_answer_rate"] == 0.0


def test_pass_at_k_is_the_unbiased_estimator():
    assert pass_at_k(4, 0, 1) == 0.0 and pass_at_k(4, 4, 1) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2)
    assert pass_at_k(4, 3, 2) == 1.0


def test_generated_problems_are_the_same_everywhere_and_their_answers_grade_correct():
    pytest.importorskip("reasoning_gym")
    first = load_problems("gym:basic_arithmetic:8")
    assert [p.problem for p in first] == [p.problem for p in load_problems("gym:basic_arithmetic:8")]
    assert len(first) == 8 and len({p.problem for p in first}) > 1
    with Grader(timeout_s=3.0) as grader:
        assert all(grader.grade(f"\\boxed{{{p.answer}}}", p.answer).correct for p in first)


def test_benchmark_names_are_found_in_the_data_dir(tmp_path):
    write_jsonl(tmp_path / "MATH500.jsonl", PROBLEMS[:2])
    problems = load_problems("math500", data_dir=tmp_path)
    assert [(p.id, p.answer) for p in problems] == [("p1", "2"), ("p2", "\\frac{1}{2}")]
    assert len(load_problems("math500", data_dir=tmp_path, limit=1)) == 1


@pytest.mark.parametrize(
    ("source", "rows", "data_dir", "message"),
    [
        ("nosuchbench", None, None, r"neither a file or folder nor a benchmark name; the names are math500"),
        ("aime24", None, None, r"pass --data-dir DIR"),
        ("aime24", None, "dir", r"no file for benchmark 'aime24'.*aime24, AIME24"),
        ("bad.jsonl", [{"question": "q"}], None, r"bad.jsonl:1: no 'answer' field.*its fields are question"),
        (
            "bad.jsonl",
            [{"problem": "q", "answer": "A", "choices": []}],
            None,
            r"bad.jsonl:1: field 'choices' is \[\] \(a list\); give a non-empty list",
        ),
    ],
)
def test_a_bad_benchmark_is_named_with_the_fix(tmp_path, source, rows, data_dir, message):
    if rows is not None:
        source = str(write_jsonl(tmp_path / source, rows))
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        load_problems(source, data_dir=tmp_path if data_dir else None)


def test_the_prompt_is_the_papers_evaluation_prompt():
    """spiral-rl/spiral's `qwen3_general` template, character for character: the unpinned prompt is why its
    MATH500 baseline could not be reproduced."""
    from spiral_train.reasoning.benchmarks import prompt_text
    from spiral_train.reasoning.data import Problem

    expected = (
        "<|im_start|>user\nQuestion: What is 1 + 1?"
        "\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert prompt_text(Problem("p1", "What is 1 + 1?", "2"), "qwen3") == expected


def test_evaluation_in_training_samples_with_the_eval_options():
    from spiral_train.config import ConfigError, make_config
    from spiral_train.reasoning.benchmarks import ReasoningProbe

    config = make_config("tiny-cpu", {"eval_reasoning": ["gym:basic_arithmetic:2"], "top_p": 1.0, "eval_top_p": 0.9})
    probe = ReasoningProbe.from_config(config)
    assert (probe.protocol.top_p, probe.protocol.top_k, probe.protocol.temperature) == (0.9, 0, 1.0)
    probe.close()
    with pytest.raises(ConfigError, match=r"eval_top_p=0.0 must be in \(0, 1\]"):
        make_config("tiny-cpu", {"eval_top_p": 0})


def test_the_cli_names_a_missing_argument(capsys):
    assert main(["reasoning", "--benchmark", "gym:basic_arithmetic:2"]) == 2
    assert "needs --model and --benchmark" in capsys.readouterr().err


def test_training_logs_the_reasoning_accuracy_at_every_evaluation(quick_model, tmp_path):
    from helpers import small_config

    from spiral_train.plot import plot_run
    from spiral_train.trainer import Trainer

    bench = write_jsonl(tmp_path / "tiny_bench.jsonl", PROBLEMS)
    config = small_config(
        quick_model,
        2,
        eval_every=1,
        eval_reasoning=[str(bench), "gym:basic_arithmetic:3"],
        eval_reasoning_samples=2,
        eval_reasoning_max_new_tokens=8,
    )
    run_dir = Trainer(config, tmp_path / "run").run()
    records = [r for r in read_metrics(run_dir) if "eval/reasoning/tiny_bench/accuracy" in r]
    assert [r["step"] for r in records] == [0, 1, 2]
    for r in records:
        for name in ("tiny_bench", "gym-basic_arithmetic-3"):
            lo, acc, hi = (r[f"eval/reasoning/{name}/{k}"] for k in ("accuracy_lo", "accuracy", "accuracy_hi"))
            assert 0.0 <= lo <= acc <= hi <= 1.0
            assert f"eval/reasoning/{name}/pass@2" in r
    assert plot_run(run_dir).exists()


def test_a_missing_reasoning_benchmark_fails_at_start(quick_model, tmp_path):
    from helpers import small_config

    from spiral_train.config import ConfigError

    with pytest.raises(ConfigError, match=r"eval_reasoning: benchmark 'math500' .*pass --eval-reasoning-dir DIR"):
        small_config(quick_model, 1, eval_reasoning=["math500"])  # refused with the options, before the trainer


@pytest.mark.parametrize("samples", [1, 4])
@pytest.mark.parametrize("all_or_none", ["none", "all"])
def test_the_accuracy_interval_at_0_and_at_n_has_positive_width(samples, all_or_none):
    """0 (or all) correct of 80 problems: the interval holds the accuracy and is not (0, 0) (or (1, 1)); both are
    Wilson's over the 80 problems (n > 1: since the problem means do not vary), (0, 0.0458) at 0 of 80."""
    right = all_or_none == "all"
    rows = [{"correct": [right] * samples, "extracted": ["x"] * samples} for _ in range(80)]
    summary = summarize(rows)
    lo, accuracy, hi = summary["accuracy_lo"], summary["accuracy"], summary["accuracy_hi"]
    assert accuracy == (1.0 if right else 0.0)
    assert 0.0 <= lo <= accuracy <= hi <= 1.0 and hi - lo > 0.0
    assert hi - lo == pytest.approx(0.04582, abs=5e-5)  # z^2 / (80 + z^2)


def test_the_accuracy_interval_of_varied_problems_is_the_normal_one():
    from spiral_train.reasoning.benchmarks import accuracy_interval

    lo, hi = accuracy_interval([0, 4, 2, 2], 4)  # means 0, 1, .5, .5: sd 0.408, se 0.204
    assert (lo, hi) == pytest.approx((0.5 - 0.40, 0.5 + 0.40), abs=0.005)
    assert accuracy_interval([3], 4) == (0.0, 1.0)
    lo, hi = accuracy_interval([2] * 10, 4)  # every problem 2 of 4: no spread, Wilson's at 5 of 10 problems
    assert lo < 0.5 < hi and (lo, hi) == pytest.approx((0.237, 0.763), abs=0.001)
