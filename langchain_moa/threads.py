"""Conversations kept by name (threads) in LangGraph's SQLite checkpointer: ``moa chat --thread`` and
the page of ``moa serve`` keep theirs here, so a conversation survives a restart.

A turn is stored whole, the question and its answer in one checkpoint, once the answer has come: a
cancelled or failed answer leaves the thread as it was (the next turn never follows a question that
was never answered).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_core.language_models import LanguageModelInput
    from langchain_core.messages import AIMessage, AnyMessage, BaseMessage
    from langchain_core.runnables import Runnable, RunnableConfig
    from langgraph.graph.state import CompiledStateGraph

__all__ = ["Threads", "threads_path"]


def threads_path() -> Path:
    """The SQLite file of the threads: ``$LANGCHAIN_MOA_DATA`` or the user's data directory."""
    from platformdirs import user_data_path

    folder = Path(os.environ.get("LANGCHAIN_MOA_DATA") or user_data_path("langchain-moa"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "threads.sqlite"


class Threads:
    """The threads in one SQLite file (default: ``threads_path()``, found on first use)."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path

    @property
    def path(self) -> Path:
        if self._path is None:
            self._path = threads_path()
        return self._path

    async def messages(self, thread: str) -> list[AnyMessage]:
        """The thread's messages, oldest first (none for a thread never answered)."""
        async with self._graph() as graph:
            state = await graph.aget_state(_config(thread))
        return list(state.values.get("messages", []))

    async def answer(
        self, moa: Runnable[LanguageModelInput, BaseMessage], thread: str, turn: Sequence[BaseMessage]
    ) -> AIMessage:
        """``moa``'s answer to the thread's history followed by ``turn``; the turn and the answer are
        then stored together."""
        async with self._graph() as graph:
            config = _config(thread)
            history = (await graph.aget_state(config)).values.get("messages", [])
            answer: AIMessage = await moa.ainvoke([*history, *turn])  # type: ignore[assignment]
            await graph.aupdate_state(config, {"messages": [*turn, answer]}, as_node=_NODE)
        return answer

    @asynccontextmanager
    async def _graph(self) -> AsyncIterator[CompiledStateGraph[Any, Any, Any, Any]]:
        """A chat graph that only stores: turns are written to it, its one node does nothing."""
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
        from langgraph.graph import END, START, MessagesState, StateGraph

        graph = StateGraph(MessagesState).add_node(_NODE, lambda _: {})
        graph.add_edge(START, _NODE).add_edge(_NODE, END)
        async with AsyncSqliteSaver.from_conn_string(str(self.path)) as saver:
            yield graph.compile(checkpointer=saver)


_NODE = "moa"


def _config(thread: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread}}
