"""How ``MoAChatModel`` streams: the MoA run's tokens as core's chunks (ids, ``output_version``), read
while the call runs, and the closing chunk with the usage and the record."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk

from langchain_moa import cancellation
from langchain_moa.conversation import as_chunk

__all__ = ["ContentBlocks", "RunTokens", "last_chunk", "run_token", "while_running"]


def run_token(
    chunk: AIMessageChunk, message_id: str | None, blocks: ContentBlocks | None
) -> ChatGenerationChunk | None:
    """The MoA run's token for an aggregator chunk (``None`` for an empty one); with
    ``output_version="v1"``, its content as content blocks."""
    if not (chunk.content or chunk.tool_call_chunks):
        return None
    # The aggregator's id, usage and metadata stay out: the MoA answer carries its own.
    token = AIMessageChunk(content=chunk.content, tool_call_chunks=chunk.tool_call_chunks, id=message_id)
    return ChatGenerationChunk(message=token if blocks is None else blocks.of(token))


class ContentBlocks:
    """Streamed chunks as ``output_version="v1"`` content blocks, indexed as core's ``stream`` does:
    one index per run of blocks of one type."""

    def __init__(self) -> None:
        self.index, self.type = -1, ""

    def of(self, chunk: AIMessageChunk) -> AIMessageChunk:
        content: list[Any] = list(chunk.content_blocks)
        for block in content:
            if block["type"] != self.type:
                self.type, self.index = block["type"], self.index + 1
            block.setdefault("index", self.index)
        return chunk.model_copy(
            update={
                "content": content,
                "response_metadata": {**chunk.response_metadata, "output_version": "v1"},
            }
        )


async def while_running(call: asyncio.Future[Any], chunks: asyncio.Queue[Any]) -> AsyncGenerator[Any]:
    """The items put on ``chunks`` until ``call`` is done; leaving early cancels ``call``."""
    call.add_done_callback(lambda _: chunks.put_nowait(_DONE))
    try:
        while (chunk := await chunks.get()) is not _DONE:
            yield chunk
    finally:
        if not call.done():
            await cancellation.stop(call)  # every model call has stopped when this returns


_DONE = object()


def last_chunk(answer: BaseMessage, streamed: bool) -> AIMessageChunk:
    """The closing chunk: usage and MoA metadata (and the whole answer if nothing was streamed)."""
    last = as_chunk(answer)
    if streamed:  # the text and tool calls were streamed already
        last = AIMessageChunk(
            content="" if isinstance(last.content, str) else [],
            id=last.id,
            usage_metadata=last.usage_metadata,
            response_metadata=last.response_metadata,
        )
    last.chunk_position = "last"
    return last


class RunTokens(AsyncCallbackHandler):
    """The chunks one run reports, for ``astream`` to yield."""

    run_inline = True

    def __init__(self, run_id: uuid.UUID) -> None:
        self.run_id = run_id
        self.chunks: asyncio.Queue[Any] = asyncio.Queue()

    async def on_llm_new_token(  # type: ignore[override]
        self, token: Any, *, chunk: Any = None, run_id: uuid.UUID, **kwargs: Any
    ) -> None:
        if run_id == self.run_id and isinstance(chunk, ChatGenerationChunk):
            self.chunks.put_nowait(as_chunk(chunk.message))
