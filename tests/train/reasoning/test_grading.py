"""The reasoning grader against the verdicts a careful human gives, one row per case.

Every row is (reference answer, response, correct?). The responses box their answer as the paper's prompt asks;
the rows cover fractions and decimals, `\\frac` against `/`, roots, intervals, sets, units and `\\text{}`,
thousands separators, several boxes, empty and missing boxes, and answers that are only close.
"""

from __future__ import annotations

import time

import pytest

pytest.importorskip("math_verify")

from spiral_train.reasoning.grading import Grader, normalize, reference_letter


def boxed(answer: str) -> str:
    return f"Let me think step by step. ... So the final answer is \\boxed{{{answer}}}."


FREE_FORM = [
    # fractions, decimals, and the ways to write them
    ("\\frac{1}{2}", boxed("0.5"), True),
    ("0.5", boxed("\\frac12"), True),
    ("1/2", boxed("\\dfrac{1}{2}"), True),
    ("-\\frac{1}{3}", boxed("-1/3"), True),
    ("1.5", boxed("\\frac{3}{2}"), True),
    ("0.333", boxed("\\frac13"), False),  # a rounded decimal is not the fraction
    ("\\frac{2}{4}", boxed("\\frac{1}{2}"), True),
    ("3", boxed("3.0"), True),
    ("3", boxed("4"), False),
    ("-2", boxed("2"), False),
    # roots and powers
    ("\\sqrt{2}", boxed("2^{1/2}"), True),
    ("2\\sqrt{3}", boxed("\\sqrt{12}"), True),
    ("\\frac{\\sqrt{3}}{2}", boxed("\\frac{\\sqrt3}{2}"), True),
    ("\\sqrt{2}", boxed("1.414"), False),
    ("x^2+2x+1", boxed("(x+1)^2"), True),
    # intervals, tuples and sets
    ("[0,1)", boxed("[0,1)"), True),
    ("[0,1)", boxed("[0,1]"), False),
    ("(0,1)", boxed("(0, 1)"), True),
    ("(1,2)", boxed("(2,1)"), False),  # an ordered pair
    ("\\{1,2\\}", boxed("\\{2,1\\}"), True),  # a set
    ("(-\\infty, 3]", boxed("(-\\infty,3]"), True),
    # units, \text{} and degrees
    ("5", boxed("5\\text{ cm}"), True),
    ("5", boxed("\\text{5}"), True),
    ("90^\\circ", boxed("90"), True),
    ("90", boxed("90^{\\circ}"), True),
    ("12", boxed("\\textbf{12}"), True),
    # thousands separators
    ("10000", boxed("10,000"), True),
    ("10,000", boxed("10000"), True),
    ("1000000", boxed("1,000,000"), True),
    ("1,2", boxed("12"), False),  # a pair, not a thousands separator
    # equations and constants
    ("x=3", boxed("3"), True),
    ("3", boxed("x=3"), True),
    ("\\pi", boxed("3.14"), False),
    ("\\pi", boxed("\\pi"), True),
    ("\\infty", boxed("\\infty"), True),
    ("e", boxed("2.718"), False),
    # where the answer is, or is not
    ("2", boxed("1") + " Wait, I made an error. " + boxed("2"), True),  # the last box counts
    ("2", boxed("2") + " Wait, no: " + boxed("1"), False),
    ("3", "The answer is 3.", False),  # no box: the prompt asks for one
    ("3", boxed(""), False),
    ("3", "\\boxed{3", False),  # a box that never closes
    ("\\frac{1}{2}", boxed("\\frac{1}{2}"), True),
    ("7", boxed("7."), True),
]

CHOICES = ["red", "blue", "green", "white"]
MULTIPLE_CHOICE = [
    ("B", boxed("B"), True),
    ("B", boxed("(B)"), True),
    ("B", boxed("\\text{B}"), True),
    ("B", boxed("C"), False),
    ("green", boxed("\\text{(C)}"), True),  # the reference given as the choice's text
    ("B", boxed("blue"), True),  # the box holds the choice's text
    ("B", "Thinking... the answer is (B).", True),  # no box: the last "answer is (X)"
    ("B", "The answer is (B). No wait, the answer is (D).", False),
    ("B", "I cannot tell.", False),
    ("B", boxed("E"), False),  # not a choice
]


@pytest.fixture(scope="module")
def grader():
    with Grader(timeout_s=3.0) as g:
        yield g


def test_there_are_at_least_forty_free_form_cases():
    assert len(FREE_FORM) >= 40


@pytest.mark.parametrize(("answer", "response", "correct"), FREE_FORM)
def test_free_form_verdicts(grader, answer, response, correct):
    verdict = grader.grade(response, answer)
    assert verdict.correct is correct, verdict


@pytest.mark.parametrize(("answer", "response", "correct"), MULTIPLE_CHOICE)
def test_multiple_choice_verdicts(grader, answer, response, correct):
    verdict = grader.grade(response, answer, CHOICES)
    assert verdict.correct is correct, verdict


def test_a_megabyte_answer_is_graded_fast_and_wrong(grader):
    start = time.monotonic()
    verdict = grader.grade(boxed("9" * 1_000_000), "9")
    assert not verdict.correct and time.monotonic() - start < 2.0


@pytest.mark.parametrize("explosive", ["2^{2^{2^{2^{2^{2^{2^{2^{100}}}}}}}}", "(10^{10^{10}})!"])
def test_an_answer_sympy_cannot_finish_fails_within_the_time_limit(grader, explosive):
    start = time.monotonic()
    verdict = grader.grade(boxed(explosive), "1")
    assert not verdict.correct and verdict.method == "timeout"  # not "different": the comparison never finished
    assert time.monotonic() - start < grader.timeout_s + 3.0
    assert grader.grade(boxed("0.5"), "\\frac{1}{2}").correct  # and the grader still works afterwards


def test_a_reference_that_is_neither_a_letter_nor_a_choice_is_named():
    with pytest.raises(ValueError, match="'purple' is neither a letter nor one of the choices"):
        reference_letter("purple", CHOICES)


def test_normalize_drops_what_does_not_change_the_answer():
    assert normalize(" \\left( 1,\\!000 \\right) . ") == "(1000)"
    assert normalize("\\dfrac{1}{2}") == "\\frac{1}{2}"
