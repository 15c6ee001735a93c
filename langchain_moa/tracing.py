"""Child runs under the MoA run, and usage counted once.

Every proposer and aggregator call is a child run of the MoA call's run (one trace tree). The MoA
answer carries the summed usage of all of them, so usage handlers (``get_usage_metadata_callback``)
are kept off the children: each token is counted once. Children are tagged ``nostream``, so a
surrounding LangGraph ``messages`` stream shows the MoA answer's tokens once, not every proposer's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    BaseCallbackHandler,
    CallbackManager,
    CallbackManagerForLLMRun,
    UsageMetadataCallbackHandler,
)
from langchain_core.language_models import LangSmithParams
from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.tracers.context import _configure_hooks
from langgraph.constants import TAG_NOSTREAM

from langchain_moa import events
from langchain_moa.models import model_label
from langchain_moa.options import MoAOptions

__all__ = ["child_callbacks", "inner_context", "ls_params"]


def child_callbacks(
    run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
) -> CallbackManager | None:
    """Callbacks for the graph: every model call inside becomes a child run of the MoA run.

    ``None`` when no handler would see the children (then LangGraph skips its per-node run setup).
    """
    handlers = [h for h in run_manager.inheritable_handlers if not _counts_usage(h)] if run_manager else []
    if run_manager is None or not handlers:
        return None
    manager = CallbackManager(handlers=[], parent_run_id=run_manager.run_id)
    manager.set_handlers(handlers)
    manager.add_tags([*run_manager.inheritable_tags, TAG_NOSTREAM])
    manager.add_metadata(run_manager.inheritable_metadata)
    return manager


def _counts_usage(handler: BaseCallbackHandler) -> bool:
    return isinstance(handler, UsageMetadataCallbackHandler)


@contextlib.contextmanager
def inner_context() -> Iterator[None]:
    """While the MoA graph runs: its own run configuration, no usage hooks, no MoA observers.

    The graph gets its callbacks from the MoA run (``child_callbacks``); it must not inherit the
    configuration of a surrounding LangGraph run (its checkpoint namespace and durability: the MoA
    graph keeps no checkpoints).

    ``get_usage_metadata_callback()`` handlers are not passed down as callbacks: LangChain re-attaches
    them to every run configured while their context variable is set, and that variable is reachable
    only through the private ``_configure_hooks`` (pinned by tests/unit_tests/test_upstream.py). MoA
    observers watch the outer call only. The graph's tasks copy the context when they start; the
    variables are restored when the block ends. Use it in a coroutine, never across a ``yield``.
    """
    hooked = [var for var, *_ in _configure_hooks if isinstance(var.get(), UsageMetadataCallbackHandler)]
    variables: list[ContextVar[Any]] = [var_child_runnable_config, *hooked]
    tokens = [(var, var.set(None)) for var in variables]
    try:
        with events.unobserved() if events.observers() else contextlib.nullcontext():
            yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def ls_params(moa: MoAOptions, stop: list[str] | None, kwargs: dict[str, Any]) -> LangSmithParams:
    """How LangSmith lists a MoA call: provider ``moa``, the aggregator's model (or the call's
    ``model=`` override, which goes to the aggregator) and the call's sampling settings."""
    model = kwargs.get("model")
    aggregator = moa.aggregator if isinstance(moa.aggregator, str) else model_label(moa.aggregator)
    params = LangSmithParams(
        ls_provider="moa", ls_model_name=model if isinstance(model, str) else aggregator, ls_model_type="chat"
    )
    temperature = kwargs.get("temperature", moa.temperature)
    max_tokens = kwargs.get("max_tokens", moa.max_tokens)
    if temperature is not None:
        params["ls_temperature"] = temperature
    if max_tokens is not None:
        params["ls_max_tokens"] = max_tokens
    if stop:
        params["ls_stop"] = stop
    return params
