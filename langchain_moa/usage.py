"""The tokens a call reported, as core's ``UsageMetadata``, and their sum over several calls."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from langchain_core.messages import BaseMessage
from langchain_core.messages.ai import UsageMetadata, add_usage

__all__ = ["summed", "usage_of"]

_COUNTS = ("input_tokens", "output_tokens", "total_tokens")


def usage_of(message: BaseMessage) -> UsageMetadata | None:
    """The tokens a call reported, ``None`` when it reported none. A cache hit of a call that reported
    none carries core's ``{"total_cost": 0}`` alone: no token counts, so unknown too."""
    usage = getattr(message, "usage_metadata", None)
    if not usage or not all(key in usage for key in _COUNTS):
        return None
    return usage


def summed(usages: Sequence[UsageMetadata]) -> UsageMetadata:
    """The sum of several calls' usage."""
    total = functools.reduce(add_usage, usages)
    # Token counts only: core's cache-hit marker (``total_cost``) describes one call, not the answer.
    return UsageMetadata(**{k: v for k, v in total.items() if k in UsageMetadata.__annotations__})  # type: ignore[typeddict-item]
