"""Unit tests run offline: every socket but the event loop's Unix pairs is refused."""

from __future__ import annotations

import typing
from collections.abc import Iterator

import pytest
from pytest_socket import disable_socket, enable_socket


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    disable_socket(allow_unix_socket=True)
    yield
    enable_socket()


@pytest.fixture
def introspection() -> object:
    """What LangGraph Server gives a graph factory when it only reads the graph (drawing, schemas,
    state): a ``ServerRuntime`` whose ``execution_runtime`` is ``None``."""
    from langgraph.store.memory import InMemoryStore
    from langgraph_sdk.runtime import ServerRuntime

    # The read runtime the server constructs: the second of the two kinds ``ServerRuntime`` names.
    read_runtime = typing.get_origin(typing.get_args(ServerRuntime.__value__)[-1])
    runtime = read_runtime(access_context="assistants.read", store=InMemoryStore())
    assert runtime.execution_runtime is None
    return runtime
