"""The three private names of langchain-core, langchain and LangGraph that MoA relies on, each because
no public API does the job (the reason is beside each use). A release that moves one fails here first:
``.ci/newest`` runs the unit tests against the newest releases, beyond the versions pyproject pins."""

from __future__ import annotations

import asyncio

from langchain_core.callbacks import UsageMetadataCallbackHandler, get_usage_metadata_callback


def test_langgraphs_node_wrapper_takes_a_sync_and_an_async_function() -> None:
    from langgraph._internal._runnable import RunnableCallable

    async def afunc(value: int) -> int:
        return value + 1

    node = RunnableCallable(lambda value: value + 2, afunc, name="n", trace=False)
    assert node.invoke(1) == 3
    assert asyncio.run(node.ainvoke(1)) == 2


def test_the_usage_callbacks_context_variable_is_reachable_through_the_configure_hooks() -> None:
    from langchain_core.tracers.context import _configure_hooks

    with get_usage_metadata_callback() as handler:
        hooked = [var for var, *_ in _configure_hooks if var.get() is handler]
    assert len(hooked) == 1 and isinstance(handler, UsageMetadataCallbackHandler)


def test_init_chat_models_providers_are_listed() -> None:
    from langchain.chat_models import base

    assert {"openai", "anthropic", "together", "ollama"} <= set(base._BUILTIN_PROVIDERS)
