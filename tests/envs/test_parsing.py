"""Move extraction from free-text answers.

Every sampled answer goes through `extract_move`, so it must pick the move a model committed to (its last
`\\boxed{}`), never crash, and stay linear on adversarial text: a trainer cannot afford one answer that hangs.
"""

from __future__ import annotations

import re

import pytest
from game_helpers import fastest_step
from hypothesis import given
from hypothesis import strategies as st

import spiral_envs
from spiral_envs.core import normalize_move
from spiral_envs.parsing import extract_move, last_boxed, last_bracketed, strip_latex

# A move as games write it: no brackets, braces, backslashes or newlines inside.
MOVE_TEXT = st.text(alphabet=st.characters(categories=["L", "N"]) | st.sampled_from(" -_.,$"), min_size=1, max_size=40)


# -- last boxed wins ------------------------------------------------------------------------------------------


def test_last_boxed_wins_over_earlier_boxed() -> None:
    answer = "Maybe \\boxed{[check]}? No, on reflection: \\boxed{[bet]}"
    assert extract_move(answer) == "[bet]"


def test_boxed_wins_over_later_brackets() -> None:
    # A bracketed token after the box is reasoning chatter; the box is the committed answer.
    answer = "Final: \\boxed{[fold]} although [call] was tempting"
    assert extract_move(answer) == "[fold]"


def test_brackets_used_when_no_box() -> None:
    assert extract_move("I think [check] then maybe [bet] is best") == "[bet]"


def test_nested_braces_inside_box() -> None:
    answer = "\\boxed{\\text{[bet]}}"
    assert last_boxed(answer) == "\\text{[bet]}"
    assert extract_move(answer) == "[bet]"


def test_deeply_nested_latex_wrappers_are_stripped() -> None:
    assert extract_move("\\boxed{\\textbf{\\text{ [Accept] }}}") == "[Accept]"
    assert strip_latex("\\mathrm {call}") == "call"
    assert strip_latex("\\texttt{[3]}") == "[3]"


def test_space_between_boxed_and_brace_is_allowed() -> None:
    assert last_boxed("\\boxed {[4]}") == "[4]"


def test_unclosed_box_falls_back_to_earlier_closed_box() -> None:
    answer = "\\boxed{[check]} hmm, actually \\boxed{[bet]"
    assert last_boxed(answer) == "[check]"
    assert extract_move(answer) == "[check]"


def test_unclosed_box_falls_back_to_brackets() -> None:
    answer = "I pick [call] so \\boxed{call"
    assert last_boxed(answer) is None
    assert extract_move(answer) == "[call]"


def test_unclosed_box_does_not_steal_a_later_box_close() -> None:
    # The outer box never closes on its own; the inner one is the last closed box.
    answer = "\\boxed{ thinking \\boxed{[2]} more"
    assert extract_move(answer) == "[2]"


def test_empty_box_is_an_empty_move_not_a_fallback() -> None:
    # An empty box is a (wrong) commitment, not an absence: the env reports it as an illegal move.
    assert extract_move("[bet] \\boxed{}") == ""


@pytest.mark.parametrize(
    "answer",
    ["", "no move here", "\\boxed", "\\boxed{", "[]", "[\n]", "[" + "x" * 201 + "]", "]bet["],
)
def test_no_move_gives_none(answer: str) -> None:
    assert extract_move(answer) is None


def test_bracket_token_cannot_span_lines_or_exceed_200_chars() -> None:
    assert last_bracketed("[a\nb]") is None
    assert last_bracketed("[" + "y" * 200 + "]") == "[" + "y" * 200 + "]"
    assert last_bracketed("[" + "y" * 201 + "]") is None


@pytest.mark.parametrize("written", ["\\boxed{[ Bet ]}", "\\boxed{BET}", "[bet]", "\\boxed{\\text{ bet }}", "[[bet]]"])
def test_case_spacing_and_brackets_normalize_to_one_move(written: str) -> None:
    move = extract_move(written)
    assert move is not None
    assert normalize_move(move) == "bet"


def test_normalize_move_collapses_inner_whitespace() -> None:
    assert normalize_move("  [ Offer   3\tWood ] ") == "offer 3 wood"


# -- properties -----------------------------------------------------------------------------------------------


@given(st.text())
def test_any_text_gives_str_or_none(answer: str) -> None:
    move = extract_move(answer)
    assert move is None or isinstance(move, str)


@given(st.binary().map(lambda b: b.decode("utf-8", errors="surrogateescape")))
def test_binary_ish_text_gives_str_or_none(answer: str) -> None:
    move = extract_move(answer)
    assert move is None or isinstance(move, str)


@given(prefix=st.text(), move=MOVE_TEXT)
def test_final_box_wins_whatever_precedes_it(prefix: str, move: str) -> None:
    assert extract_move(f"{prefix}\\boxed{{{move}}}") == move.strip()


@given(prefix=st.text().filter(lambda t: "\\boxed" not in t), move=MOVE_TEXT)
def test_final_bracket_wins_without_a_box(prefix: str, move: str) -> None:
    assert extract_move(f"{prefix}[{move}]") == f"[{move}]"


# -- adversarial sizes: these hang the suite if the scan is ever quadratic -----------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        "\\boxed{" * 200_000,
        "[" * 500_000,
        "[" + "a" * 500_000,
        "[a" * 250_000,
        "\\boxed{" + "{" * 500_000,
        "\\boxed " * 200_000,
        "}" * 500_000 + "\\boxed{",
    ],
    ids=["open-boxes", "open-brackets", "one-long-bracket", "short-open-brackets", "open-braces", "no-brace", "close"],
)
def test_pathological_inputs_finish(answer: str) -> None:
    assert extract_move(answer) is None


def test_many_closed_boxes_pick_the_last() -> None:
    answer = "".join(f"\\boxed{{[{i}]}}" for i in range(100_000))
    assert extract_move(answer) == "[99999]"


def test_deeply_nested_latex_wrappers_finish() -> None:
    # Stripping one wrapper level per pass without a bound is quadratic in the depth: 16k levels took 17 s.
    depth = 200_000
    move = extract_move("\\boxed{" + "\\text{" * depth + "bet" + "}" * depth + "}")
    assert isinstance(move, str)
    assert move.endswith("bet" + "}" * (depth - 8))  # the innermost levels are stripped, the rest left as is
    assert normalize_move(move) != "bet"  # so such an answer is an invalid move, not a crash or a hang


def test_realistic_wrapper_nesting_is_fully_stripped() -> None:
    assert strip_latex("\\text{\\textbf{\\mathrm{\\texttt{[bet]}}}}") == "[bet]"


# -- nested and repeated structures: linear time, and the one-pair-at-a-time meaning ----------------------------


def _strip_one_pair_at_a_time(move: str) -> str:
    """What `normalize_move` means, written the obvious (quadratic) way."""
    text = re.sub(r"\s+", " ", move).strip().lower()
    while len(text) >= 2 and text[0] == "[" and text[-1] == "]":
        text = text[1:-1].strip()
    return text


NESTED = st.recursive(
    st.text(alphabet="ab [] {}\t", max_size=4),
    lambda inner: st.one_of(
        st.tuples(st.sampled_from(["[%s]", "{%s}", "\\boxed{%s}", "\\text{%s}", "[ %s ]", "%s]", "[%s"]), inner).map(
            lambda pair: pair[0] % pair[1]
        ),
        st.lists(inner, max_size=4).map("".join),
    ),
    max_leaves=30,
)
"""Answers built of nested and repeated brackets, braces, boxes and LaTeX wrappers, balanced or not."""


@given(NESTED)
def test_normalize_move_strips_bracket_pairs_as_one_at_a_time_would(move: str) -> None:
    assert normalize_move(move) == _strip_one_pair_at_a_time(move)


@given(NESTED)
def test_nested_structures_give_str_or_none(answer: str) -> None:
    move = extract_move(answer)
    assert move is None or (isinstance(move, str) and len(move) <= len(answer))


ADVERSARIAL = {
    "nested brackets in a box": lambda n: "\\boxed{" + "[" * n + "]" * n + "}",
    "spaced nested brackets in a box": lambda n: "\\boxed{" + "[ " * (n // 2) + "x" + " ]" * (n // 2) + "}",
    "nested braces in a box": lambda n: "\\boxed{" + "{" * n + "}" * n + "}",
    "bare nested brackets": lambda n: "[" * n + "]" * n,
    "unclosed boxes": lambda n: "\\boxed{" * (n // 7),
    "nested text wrappers": lambda n: "\\boxed{" + "\\text{" * (n // 6) + "}" * (n // 6) + "}",
}
"""Answers of one shape at any length (about 2n characters), which a quadratic parser would stall on."""


@pytest.mark.parametrize("env_id", ["TicTacToe-v0", "KuhnPoker-v1", "SimpleNegotiation-v1"])
@pytest.mark.parametrize("shape", list(ADVERSARIAL))
def test_reading_an_adversarial_answer_takes_time_linear_in_its_length(env_id: str, shape: str) -> None:
    # 8x the length: linear parsing takes ~8x the time, quadratic ~64x; the bound sits between, with slack
    # for a noisy machine (the fastest of three tries each).
    small = fastest_step(spiral_envs.make(env_id), ADVERSARIAL[shape](250_000))
    large = fastest_step(spiral_envs.make(env_id), ADVERSARIAL[shape](2_000_000))
    assert large < 24 * small + 0.05, f"{shape}: {small:.3f} s at 0.5 MB, {large:.3f} s at 4 MB"
