"""Confidence intervals and paired tests, so that nobody reads noise as a win.

Accuracy gets Wilson's 95% score interval (good at small samples and near 0 or 1). Two configurations
answered the same questions, so they are compared by McNemar's exact test: only the questions on
which they disagree carry information, and under "no difference" each of those is a coin flip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["mcnemar", "wilson_interval"]


def wilson_interval(correct: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson's score interval for ``correct`` successes out of ``total`` (95% by default).

    Examples:
        >>> [round(x, 3) for x in wilson_interval(8, 10)]
        [0.49, 0.943]
    """
    if total == 0:
        return 0.0, 1.0
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar(first: Sequence[bool], second: Sequence[bool]) -> tuple[int, int, float]:
    """McNemar's exact test on paired outcomes: (only ``first`` right, only ``second`` right, two-sided p).

    Examples:
        >>> only_a, only_b, p = mcnemar([True] * 10 + [False] * 2, [False] * 10 + [True] * 2)
        >>> only_a, only_b, round(p, 4)
        (10, 2, 0.0386)
    """
    if len(first) != len(second):
        msg = f"paired outcomes must cover the same questions, got {len(first)} and {len(second)}"
        raise ValueError(msg)
    only_first = sum(a and not b for a, b in zip(first, second, strict=True))
    only_second = sum(b and not a for a, b in zip(first, second, strict=True))
    n, k = only_first + only_second, min(only_first, only_second)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n if n else 1.0
    return only_first, only_second, min(1.0, 2 * tail)
