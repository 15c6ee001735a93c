"""Errors raised by langchain-moa."""

from __future__ import annotations

__all__ = ["AggregatorError", "MoAConfigError", "MoAError"]


class MoAError(Exception):
    """A Mixture-of-Agents call could not produce an answer (e.g. too many proposers failed)."""


class AggregatorError(MoAError):
    """The aggregator model failed; the provider's exception is the ``__cause__``."""


class MoAConfigError(MoAError, ValueError):
    """A configuration value is invalid; the message names the value and the fix."""
