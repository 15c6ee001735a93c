"""Reading the final answer out of a model's free text: ``tally`` counts them, ``majority`` votes with
them, and ``moa eval exact`` scores and votes with them. An answer the text states ("Answer: B", "the
answer is 42", "\\boxed{42}") comes first; numbers are compared by value."""

from __future__ import annotations

import re

__all__ = ["NUMBER", "choice_letter", "final_answer", "normalize", "number_answer", "stated_answer"]

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
NUMBER = re.compile(_NUMBER)

# "Answer: B", "**Answer:** B", "the correct choice is (B)", "the answer should be 42", "\boxed{42}".
_STATED = r"(?:(?i:\banswer|\bchoice)\**\s*(?:\s(?i:is|would be|should be)\b\s*:?|:)[\s*(\[$]*|\\boxed\{\s*)"
_NOT_A_SUM = r"(?!\s*[-+*/\u00d7\u00f7=^])"  # "the answer is 6 * 7 = 42" states no answer
_STATED_ANSWER = re.compile(_STATED + rf"(?:([A-J])\b|({_NUMBER}){_NOT_A_SUM})")
# How an answer names its choice when it states none: a line starting "B." or "**B)**", else any capital
# A-J standing alone, except the article "A" and the pronoun "I" (followed by a word other than a verb).
_CHOICE_RULES = (
    re.compile(r"^[\s*#>(\[-]*([A-J])[.):\]]", re.MULTILINE),
    re.compile(r"\b(?![AI] (?!is\b|was\b|because\b)[A-Za-z])([A-J])\b"),
)


def _by_value(number: str) -> str:
    value = float(number.replace(",", ""))
    return str(int(value)) if value.is_integer() else str(value)


_BARE = re.compile(rf"\s*(?:([A-J])|({_NUMBER}))\s*[.!]?\s*")
"""A whole reply that is only a choice letter or a number ("42", "B."): its own stated answer."""


def stated_answer(text: str) -> str | None:
    """The last answer ``text`` states, a choice letter or a number ("1,024.0" reads "1024"), if any.
    A reply that is nothing but a letter or a number states itself."""
    found = _STATED_ANSWER.findall(text)
    if not found and (bare := _BARE.fullmatch(text)):
        found = [bare.groups()]
    if not found:
        return None
    letter, number = found[-1]
    return letter or _by_value(number)


def choice_letter(text: str) -> str | None:
    """The choice letter an answer gives: a stated one, else the last one found by the most explicit
    rule that finds any."""
    if (stated := stated_answer(text)) is not None and re.fullmatch("[A-J]", stated):
        return stated
    for rule in _CHOICE_RULES:
        if found := rule.findall(text):
            return str(found[-1])
    return None


def number_answer(text: str) -> float | None:
    """The number an answer gives: a stated one, else its last number ("1,024" is 1024)."""
    if (stated := stated_answer(text)) is not None and not re.fullmatch("[A-J]", stated):
        return float(stated)
    found = NUMBER.findall(text)
    return float(found[-1].replace(",", "")) if found else None


def normalize(text: str) -> str:
    """Lower case, no punctuation or articles, single spaces."""
    words = re.sub(r"[^\w\s]", " ", text.lower()).split()
    return " ".join(w for w in words if w not in {"a", "an", "the"})


def final_answer(text: str) -> str:
    """An answer's final answer when its kind is not known: a stated one, else a labelled choice line,
    else its last number (by value), else a lone choice letter, else its last non-empty line (lower
    case)."""
    if (stated := stated_answer(text)) is not None:
        return stated
    if labelled := _CHOICE_RULES[0].findall(text):
        return str(labelled[-1])
    if numbers := NUMBER.findall(text):
        return _by_value(numbers[-1])
    if letter := choice_letter(text):
        return letter
    lines = [line.strip().lower() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
