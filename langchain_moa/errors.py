"""Errors raised by langchain-moa, members of LangChain's ``ModelError`` family.

Retry wrappers and agent middleware read ``is_retryable`` and the type (``ModelRateLimitError``,
``ModelTimeoutError``, ``ContextOverflowError``, ...) without knowing the provider. So a MoA error says
what kind of failure it is: an aggregator that hit a rate limit raises an ``AggregatorError`` that is
also a ``ModelRateLimitError`` (retryable), with the provider's exception as its cause; a conversation
with nothing to answer is a ``ModelInvalidRequestError``; a context overflow names the model.
"""

from __future__ import annotations

from langchain_core.exceptions import ContextOverflowError, ModelError, ModelInvalidRequestError

__all__ = [
    "AggregatorError",
    "InvalidConversationError",
    "MoAConfigError",
    "MoAContextOverflowError",
    "MoAError",
    "aggregator_error",
    "too_few_proposals",
]


class MoAError(ModelError):
    """A Mixture-of-Agents call could not produce an answer (e.g. too many proposers failed)."""


class AggregatorError(MoAError):
    """The aggregator model failed; the provider's exception is the ``__cause__``. When that is one
    of LangChain's ``ModelError`` kinds, the error is that kind too (see ``aggregator_error``)."""


class MoAConfigError(MoAError, ValueError):
    """A configuration value is invalid; the message names the value and the fix."""


class InvalidConversationError(MoAError, ModelInvalidRequestError, ValueError):
    """The conversation cannot be answered (empty, blank, or media a model cannot take)."""


class MoAContextOverflowError(MoAError, ContextOverflowError):
    """A proposer's or the aggregator's context was too small for the conversation; names the model."""


OVERFLOW = "ContextOverflowError"
"""How a proposal records a context overflow (whichever provider class raised it)."""


def too_few_proposals(message: str, errors: list[str]) -> MoAError:
    """The error of a layer that kept too few proposals: a context overflow when one of its proposers
    overflowed (``errors``: the failed proposals' records, which name the model)."""
    if any(error.startswith(OVERFLOW) for error in errors):
        return MoAContextOverflowError(message)
    return MoAError(message)


_KINDS: dict[type[ModelError], type[AggregatorError]] = {}


def aggregator_error(message: str, cause: BaseException) -> AggregatorError:
    """An ``AggregatorError`` of the same ``ModelError`` kind as ``cause`` (so with its retryability):
    e.g. one that is also a ``ModelRateLimitError`` for a provider's 429."""
    # The kind is core's class (a provider's own subclass may take constructor arguments of its SDK's).
    kinds = [k for k in type(cause).__mro__ if k.__module__ == ModelError.__module__ and k is not ModelError]
    kind = next((k for k in kinds if issubclass(k, ModelError)), None)
    if kind is None or isinstance(cause, MoAError):
        return AggregatorError(message)
    if kind not in _KINDS:
        _KINDS[kind] = type(f"Aggregator{kind.__name__}", (AggregatorError, kind), {"__module__": __name__})
    return _KINDS[kind](message)
