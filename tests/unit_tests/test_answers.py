"""Reading final answers out of free text (``tally``'s counts, ``moa eval exact``'s scores and votes)."""

from __future__ import annotations

import pytest

from langchain_moa.answers import choice_letter, final_answer, number_answer, stated_answer


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("Answer: C\n\nA Hermitian operator has real eigenvalues, unlike D.", "C"),
        ("The correct choice is:\n\n**B**. Human", "B"),
        ("Option A is wrong.\nD. Orangutan", "D"),
        ("B is correct", "B"),
        ("A is correct.", "A"),
        ("**Answer:** B\nBecause C is wrong.", "B"),
        ("A or maybe C", "C"),
        ("A Hermitian operator is self-adjoint", None),
        ("I think so", None),
        ("The mother of Zeus is Rhea.", None),
    ],
)
def test_choice_letter_prefers_the_most_explicit_form(text: str, letter: str | None) -> None:
    assert choice_letter(text) == letter


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("Answer: B\nBecause 3 of the 4 cases fail.", "B"),  # stated, though numbers follow
        ("6 times 7: the answer is 42. Check: 42 / 6 = 7", "42"),
        ("So she pays 1,024 dollars.", "1024"),
        ("B. Paris", "B"),
        ("C. 12 m/s", "C"),  # a labelled choice before a number
        ("The answer is 6 * 7 = 42.", "42"),
        ("1,024.0 in all", "1024"),
        ("Paris\n\nThe Capital", "the capital"),
        ("", ""),
    ],
)
def test_final_answer_reads_a_stated_answer_first(text: str, answer: str) -> None:
    assert final_answer(text) == answer


def test_number_answer_reads_a_stated_number_else_the_last_by_value() -> None:
    assert number_answer("from 3 to 1,024.5 apples") == 1024.5
    assert number_answer("The answer is 12. Check: 12 * 2 = 24") == 12
    assert number_answer("none") is None


@pytest.mark.parametrize(
    ("text", "stated"),
    [
        ("**Answer**: B\n\nUnlike D", "B"),
        ("**Answer:** B\nBecause C is wrong.", "B"),
        ("Answer: C\n\nChoice A is wrong", "C"),
        ("The answer should be C because", "C"),
        ("so \\boxed{42}", "42"),
        ("The answer is $1,024.00.", "1024"),
        ("Answer: -3", "-3"),
        ("The answer is 6 * 7 = 42.", None),  # a sum, not an answer
        ("The answer choice D is a distractor", None),
        ("1. Breathe\n2. Walk\n3. Sleep", None),
    ],
)
def test_stated_answer_reads_only_what_the_text_states(text: str, stated: str | None) -> None:
    assert stated_answer(text) == stated


@pytest.mark.parametrize(("text", "stated"), [("42", "42"), (" 42.\n", "42"), ("B", "B"), ("1,024", "1024"),
                                              ("42 apples", None), ("K", None), ("Paris", None)])  # fmt: skip
def test_a_bare_letter_or_number_states_itself(text: str, stated: str | None) -> None:
    assert stated_answer(text) == stated
