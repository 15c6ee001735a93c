"""How an answer reaches a client: OpenAI's server-sent events (streamed as the MoA writes, or a whole
answer at once), and a client that leaves, which cancels the work done for it."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.requests import Request

from langchain_moa.cancellation import stop
from langchain_moa.errors import MoAError
from langchain_moa.server.logs import RequestLog
from langchain_moa.server.openai_format import (
    delta_of,
    error_body,
    finish_reason_of,
    new_id,
    stream_chunk,
    usage_of,
)

if TYPE_CHECKING:
    from langchain_core.messages import AIMessage, AIMessageChunk

__all__ = ["Client", "ClientGone", "Publish", "answer_events", "sse", "whole_events"]

_T = TypeVar("_T")
Publish = Callable[[dict[str, Any] | None], dict[str, Any] | None]
"""What a client sees of an answer's ``moa`` record (signed)."""

logger = logging.getLogger(__name__)


class ClientGone(Exception):
    """The client disconnected before the answer was ready."""


class Client:
    """Watches for the client going away, so that the work done for it can be cancelled at once."""

    def __init__(self, request: Request) -> None:
        self._gone = asyncio.Event()
        self._reader: asyncio.Future[Any] | None = None
        self._watcher = asyncio.ensure_future(self._watch(request))

    async def _watch(self, request: Request) -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                break
        self._gone.set()
        if self._reader is not None:
            self._reader.cancel()

    @property
    def gone(self) -> bool:
        return self._gone.is_set()

    def cancel_when_gone(self, reader: asyncio.Future[Any]) -> None:
        """Cancel ``reader`` (the task reading the MoA stream) when the client goes away."""
        self._reader = reader
        if self.gone:
            reader.cancel()

    async def unless_gone(self, work: Awaitable[_T]) -> _T:
        """``work``'s result; cancelled (then ``ClientGone``) if the client goes away first."""
        task = asyncio.ensure_future(work)
        gone = asyncio.ensure_future(self._gone.wait())
        try:
            await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not task.done():
            await stop(task)  # every model call has stopped
            raise ClientGone
        return task.result()

    def close(self) -> None:
        self._watcher.cancel()


async def whole_events(
    answer: AIMessage, model: str, publish: Publish, include_usage: bool
) -> AsyncIterator[str]:
    """A whole answer as server-sent events: its text in one chunk, then the closing chunks."""
    completion_id = new_id()
    yield sse(stream_chunk(completion_id, model, delta={"role": "assistant", "content": answer.text}))
    moa = publish(answer.response_metadata.get("moa"))
    yield sse(stream_chunk(completion_id, model, delta={}, finish_reason=finish_reason_of(answer), moa=moa))
    if include_usage and (usage := usage_of(answer)) is not None:
        yield sse(stream_chunk(completion_id, model, usage=usage))
    yield "data: [DONE]\n\n"


async def answer_events(
    chunks: AsyncIterator[AIMessageChunk],
    first: AIMessageChunk,
    model: str,
    client: Client,
    log: RequestLog,
    publish: Publish,
    *,
    include_usage: bool,
) -> AsyncIterator[str]:
    """Server-sent events in OpenAI's chunk format, ending with ``[DONE]``.

    The MoA stream is read by a task of its own: when the client goes away (or the response is
    cancelled) that task is cancelled, which closes the MoA stream and cancels every model call. (Read
    in the response's own task, the stream's cleanup would run under the server's cancel scope, which
    interrupts it.)
    """
    events: asyncio.Queue[str | None] = asyncio.Queue()
    reader = asyncio.ensure_future(
        _read(chunks, first, model, events, log, publish, include_usage=include_usage)
    )
    client.cancel_when_gone(reader)
    try:
        while (event := await events.get()) is not None:
            yield event
    finally:
        reader.cancel()
        client.close()


async def _read(
    chunks: AsyncIterator[AIMessageChunk],
    first: AIMessageChunk,
    model: str,
    events: asyncio.Queue[str | None],
    log: RequestLog,
    publish: Publish,
    *,
    include_usage: bool,
) -> None:
    completion_id = new_id()
    try:
        events.put_nowait(sse(stream_chunk(completion_id, model, delta={"role": "assistant", "content": ""})))
        chunk: AIMessageChunk | None = first
        tool_calls = False
        while chunk is not None:
            tool_calls = tool_calls or bool(chunk.tool_call_chunks)
            log.token(chunk)
            if delta := delta_of(chunk):
                events.put_nowait(sse(stream_chunk(completion_id, model, delta=delta)))
            if chunk.chunk_position == "last":  # the closing chunk: finish reason, usage, MoA details
                log.answered(chunk)
                reason = "tool_calls" if tool_calls else finish_reason_of(chunk)
                moa = publish(chunk.response_metadata.get("moa"))
                events.put_nowait(
                    sse(stream_chunk(completion_id, model, delta={}, finish_reason=reason, moa=moa))
                )
                if include_usage and (usage := usage_of(chunk)) is not None:
                    events.put_nowait(sse(stream_chunk(completion_id, model, usage=usage)))
                break
            chunk = await anext(chunks, None)
        events.put_nowait("data: [DONE]\n\n")
    except MoAError as error:  # the answer had started: the error is the stream's last event
        events.put_nowait(sse(error_body(str(error), kind="moa_error", code="moa_run_failed")))
    except Exception as error:  # anything else still ends the stream with an error the client can read
        logger.exception("MoA stream failed")
        events.put_nowait(sse(error_body(f"{type(error).__name__}: {error}", kind="server_error")))
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
        events.put_nowait(None)


def sse(data: dict[str, Any], event: str | None = None) -> str:
    """One server-sent event: its JSON data, named ``event`` if given."""
    named = f"event: {event}\n" if event else ""
    return f"{named}data: {json.dumps(data, ensure_ascii=False)}\n\n"
