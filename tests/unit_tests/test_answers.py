"""Reading final answers out of free text (``tally``'s counts, ``moa eval exact``'s scores and votes)."""

from __future__ import annotations

import pytest

from langchain_moa.answers import choice_letter, final_answer, last_number


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("Answer: C\n\nA Hermitian operator has real eigenvalues, unlike D.", "C"),
        ("The correct choice is:\n\n**B**. Human", "B"),
        ("Option A is wrong.\nD. Orangutan", "D"),
        ("B is correct", "B"),
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
        ("Paris\n\nThe Capital", "the capital"),
        ("", ""),
    ],
)
def test_final_answer_reads_a_stated_answer_first(text: str, answer: str) -> None:
    assert final_answer(text) == answer


def test_last_number_reads_the_value() -> None:
    assert last_number("from 3 to 1,024.5 apples") == 1024.5
    assert last_number("none") is None
