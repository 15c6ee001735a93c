"""Reading the final answer out of a model's free text: ``tally`` counts them, and ``moa eval exact``
scores and votes with them. Numbers are read by value and choice letters by the most explicit form."""

from __future__ import annotations

import re

__all__ = ["NUMBER", "choice_letter", "final_answer", "last_number", "normalize"]

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
NUMBER = re.compile(_NUMBER)

# How an answer names its choice, most explicit first: "Answer: B" / "the correct choice is (B)", a line
# starting "B." or "**B)**", and last any capital A-J standing alone, except the article "A" and the
# pronoun "I" (followed by a word).
_STATED = r"(?i:answer|choice)(?:\s+(?i:is|would be))?\s*:?\s*[*(\[]*"
_CHOICE_RULES = (
    re.compile(_STATED + r"([A-J])\b"),
    re.compile(r"^[\s*#>(\[-]*([A-J])[.):\]]", re.MULTILINE),
    re.compile(r"\b(?![AI] [A-Za-z])([A-J])\b"),
)
_STATED_ANSWER = re.compile(_STATED + rf"([A-J]\b|{_NUMBER})")


def last_number(text: str) -> float | None:
    """The value of the last number in ``text`` ("1,024" is 1024)."""
    found = NUMBER.findall(text)
    return float(found[-1].replace(",", "")) if found else None


def choice_letter(text: str) -> str | None:
    """The choice letter an answer gives: the last one found by the most explicit rule that finds any."""
    for rule in _CHOICE_RULES:
        if found := rule.findall(text):
            return str(found[-1])
    return None


def normalize(text: str) -> str:
    """Lower case, no punctuation or articles, single spaces."""
    words = re.sub(r"[^\w\s]", " ", text.lower()).split()
    return " ".join(w for w in words if w not in {"a", "an", "the"})


def final_answer(text: str) -> str:
    """An answer's final answer when its kind is not known: the last stated one ("Answer: B", "the
    answer is 42"), else its last number, else its choice letter, else its last non-empty line (lower
    case)."""
    if stated := _STATED_ANSWER.findall(text):
        return str(stated[-1]).replace(",", "")
    if numbers := NUMBER.findall(text):
        return str(numbers[-1]).replace(",", "")
    if letter := choice_letter(text):
        return letter
    lines = [line.strip().lower() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
