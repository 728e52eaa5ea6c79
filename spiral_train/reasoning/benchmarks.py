"""Reasoning evaluation with a pinned protocol: sample answers to each problem, grade them, summarise.

The protocol (`Protocol`: prompt template, temperature, top-p and top-k, samples per problem, max new tokens,
seed) is printed and stored in the summary, so two numbers are only compared when they were measured the same
way. A response is graded by `grading.Grader` (its last `\\boxed{}`). The summary gives:
- `accuracy`: avg@n, the mean over problems of the share of a problem's n samples that are correct, with a
  95% interval (`accuracy_interval`: Wilson's when n is 1, else the normal interval of the problem means, or
  Wilson's over problems where the problem means do not vary, as at 0 or all correct);
- `pass@k` for k = 1, 2, 4, ... up to n, by the unbiased estimator of Chen et al. (2021);
- `timeouts`: the responses whose comparison ran out of `--grading-timeout` (graded wrong, marked "timeout").

One output line per problem keeps the input record and adds `responses`, `extracted` and `correct`, so a
saved file can be graded again with no model (`regrade`).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from spiral_envs.stats import Z95, wilson
from spiral_train.reasoning.data import Problem
from spiral_train.reasoning.grading import LETTERS, Grader
from spiral_train.reasoning.protocol import INSTRUCTION, TEMPLATES, Protocol
from spiral_train.rollout.generation import Generator, turn_end_ids


def problem_text(problem: Problem) -> str:
    """The problem as the model reads it: a multiple-choice problem lists its options as "A. ...", "B. ..."."""
    if not problem.choices:
        return problem.problem
    options = "\n".join(f"{letter}. {choice}" for letter, choice in zip(LETTERS, problem.choices))
    return f"{problem.problem}\n{options}\nAnswer with the letter of the correct option."


def prompt_text(problem: Problem, template: str, apply_chat_template: Callable[..., Any] | None = None) -> str:
    text = problem_text(problem)
    if template == "chat":
        if apply_chat_template is None:
            raise ValueError("template='chat' needs a tokenizer with a chat template")
        messages = [{"role": "user", "content": f"{text}\n{INSTRUCTION}"}]
        return apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return TEMPLATES[template](text)


def sample_and_grade(
    problems: Sequence[Problem],
    generator: Generator,
    tokenizer: Any,
    protocol: Protocol,
    grader: Grader,
    batch_size: int = 64,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Sample `protocol.samples` answers to every problem and grade them; one output record per problem."""
    from tqdm.auto import tqdm

    chat = getattr(tokenizer, "apply_chat_template", None)
    prompts = [tokenizer(prompt_text(p, protocol.template, chat), add_special_tokens=False).input_ids for p in problems]
    requests = [(i, prompts[i]) for i in range(len(problems)) for _ in range(protocol.samples)]
    rng = torch.Generator().manual_seed(protocol.seed)
    stop_ids = turn_end_ids(tokenizer, protocol.template)
    responses: list[list[str]] = [[] for _ in problems]
    cut_off: list[list[bool]] = [[] for _ in problems]
    bar = tqdm(total=len(requests), disable=not progress, desc="sampling", unit="answer")
    for start in range(0, len(requests), batch_size):
        chunk = requests[start : start + batch_size]
        generations = generator.generate(
            [ids for _, ids in chunk],
            temperature=protocol.temperature,
            max_new_tokens=protocol.max_new_tokens,
            generator=rng,
            top_k=protocol.top_k,
            top_p=protocol.top_p,
            stop_ids=stop_ids,
        )
        for (index, _), generation in zip(chunk, generations):
            responses[index].append(generation.text)
            cut_off[index].append(generation.finish_reason == "length")
        bar.update(len(chunk))
    bar.close()
    rows = [record(p, r, grader) for p, r in zip(problems, responses)]
    for row, cut in zip(rows, cut_off):
        row["cut_off"] = cut
    return rows


def record(problem: Problem, responses: list[str], grader: Grader) -> dict[str, Any]:
    """The output line of one problem: its input record plus the responses and their grades."""
    verdicts = [grader.grade(r, problem.answer, list(problem.choices) if problem.choices else None) for r in responses]
    base = dict(problem.source) if problem.source else {}
    base.update({"id": problem.id, "problem": problem.problem, "answer": problem.answer})
    if problem.choices:
        base["choices"] = list(problem.choices)
    base.update(
        {
            "responses": responses,
            "extracted": [v.extracted for v in verdicts],
            "correct": [v.correct for v in verdicts],
            "grading": [v.method for v in verdicts],
        }
    )
    return base


def pass_at_k(n: int, c: int, k: int) -> float:
    """The chance that at least one of k samples drawn from n (c of them correct) is correct."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def summarize(rows: Sequence[dict[str, Any]], protocol: Protocol | None = None) -> dict[str, Any]:
    """avg@n accuracy with its 95% interval, pass@k, and the counts (see the module docstring)."""
    if not rows:
        raise ValueError("no graded problems to summarise")
    samples = {len(r["correct"]) for r in rows}
    if len(samples) != 1 or 0 in samples:
        raise ValueError(f"every problem needs the same number of graded responses (>= 1), got {sorted(samples)}")
    (n,) = samples
    correct = [sum(r["correct"]) for r in rows]
    accuracy = statistics.fmean(c / n for c in correct)
    lo, hi = accuracy_interval(correct, n)
    out: dict[str, Any] = {"accuracy": accuracy, "accuracy_lo": lo, "accuracy_hi": hi}
    k = 1
    while k <= n:
        out[f"pass@{k}"] = statistics.fmean(pass_at_k(n, sum(r["correct"]), k) for r in rows)
        k *= 2
    out.update({"problems": len(rows), "samples_per_problem": n})
    if all("cut_off" in r for r in rows):
        out["cut_off_rate"] = statistics.fmean(c for r in rows for c in r["cut_off"])
    out["no_answer_rate"] = statistics.fmean(e is None for r in rows for e in r["extracted"])
    if all("grading" in r for r in rows):
        out["timeouts"] = sum(method == "timeout" for r in rows for method in r["grading"])
    if protocol is not None:
        out["protocol"] = asdict(protocol)
    return out


def accuracy_interval(correct: Sequence[int], n: int) -> tuple[float, float]:
    """95% interval of avg@n, the mean of `correct[i] / n` over problems (`correct[i]`: problem i's correct
    answers of its `n`); it holds the mean and has positive width.

    - n == 1: Wilson's interval of the count of correct problems (`spiral_envs.stats.wilson`);
    - n > 1: the normal interval of the problem means (mean +- 1.96 standard errors, clipped to [0, 1]), which
      treats problems as the unit; where the problem means do not vary (every problem 0 of n, or n of n, or all
      alike) it has no width, and Wilson's interval over problems is given instead, with the sum of the problem
      means as the count of successes: a mean of values in [0, 1] varies at most as a Bernoulli one does, so
      this holds whatever the correlation of a problem's n answers (0 of 4 x 80: (0, 0.0458), as for 0 of 80
      problems; Wilson's on the pooled 320 answers, (0, 0.0119), would assume the answers independent);
    - one problem: (0, 1) for n > 1, as its mean's spread is unknown.
    """
    problems = len(correct)
    if n == 1:
        return wilson(sum(correct), problems)
    if problems < 2:
        return (0.0, 1.0)
    means = [c / n for c in correct]
    mean = statistics.fmean(means)
    half = Z95 * statistics.stdev(means) / math.sqrt(problems)
    if half <= 0.0:
        return wilson(sum(means), problems)
    return (max(0.0, min(mean, mean - half)), min(1.0, max(mean, mean + half)))


def regrade(path: str | Path, grader: Grader) -> list[dict[str, Any]]:
    """Grade the `responses` saved in an output file again, with no model (the file is checked first:
    `data.load_responses`)."""
    from spiral_train.reasoning.data import load_responses

    rows = []
    for saved in load_responses(path):
        row = record(saved.problem, saved.responses, grader)
        if saved.cut_off is not None:
            row["cut_off"] = saved.cut_off
        rows.append(row)
    return rows


def write_jsonl(rows: Sequence[dict[str, Any]], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    tmp.replace(path)  # a crash mid-write leaves the previous file, never half of one


class ReasoningProbe:
    """The `eval_reasoning` benchmarks of a training run: the same problems, sampled and graded at each
    evaluation with the run's own generator, logged as `eval/reasoning/<name>/accuracy` (and `_lo`, `_hi`,
    `pass@k`, `cut_off_rate`)."""

    def __init__(self, benchmarks: dict[str, list[Problem]], protocol: Protocol, timeout_s: float = 5.0) -> None:
        self.benchmarks = benchmarks
        self.protocol = protocol
        self.grader = Grader(timeout_s)

    @classmethod
    def from_config(cls, config: Any) -> ReasoningProbe:
        from spiral_train.reasoning.data import benchmark_name, load_problems

        benchmarks = {
            benchmark_name(source): load_problems(source, config.eval_reasoning_dir, config.eval_reasoning_problems)
            for source in config.eval_reasoning
        }
        protocol = Protocol(
            config.template,
            config.eval_temperature,
            config.eval_reasoning_samples,
            config.eval_reasoning_max_new_tokens,
            config.seed,
            config.eval_top_p,
            config.eval_top_k,
        )
        return cls(benchmarks, protocol)

    def measure(self, generator: Generator, tokenizer: Any) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, problems in self.benchmarks.items():
            rows = sample_and_grade(problems, generator, tokenizer, self.protocol, self.grader, progress=False)
            summary = summarize(rows)
            for key, value in summary.items():
                if key == "accuracy" or key.startswith(("accuracy_", "pass@")) or key == "cut_off_rate":
                    out[f"eval/reasoning/{name}/{key}"] = value
        return out

    def close(self) -> None:
        self.grader.close()
