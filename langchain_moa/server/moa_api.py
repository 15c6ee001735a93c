"""The MoA's own endpoints beside OpenAI's, for the page of ``moa serve`` and any client that shows
the mixture at work (the OpenAI-compatible endpoint is unchanged by them).

``POST /v1/moa/events`` answers a chat request (``RunRequest``: the chat completions request, its
limits and key, plus ``thread``) with the run's events as server-sent events, ``event: <kind>`` and
one JSON object each::

    proposer_started    {"node", "layer", "index", "model"}
    proposal_chunk      {"node", "layer", "index", "text"}: every proposal streams as it is written
    proposal            the proposal's record: "content" or "error", "usage", "latency_s", "skipped"
    agreed              {"layer", "agreeing", "chosen", "skipped"}: an agreement exit or a cascade
    aggregator_started  {"model", "references"}
    aggregator_round    {"round", "complete"}: a staircase round
    token               {"text"}: the answer as it is written
    answer              {"content", "finish_reason", "usage", "moa"}: the last event of a run
    error               OpenAI's error object: the last event of a run that failed

A stream that ends with neither ``answer`` nor ``error`` was cut short (the server stopped). A client
that leaves stops every model call of its run. A request refused before any model runs (a bad field,
key, model or budget) gets the same JSON error and status as on ``/v1/chat/completions``.

With ``thread``, ``messages`` is the conversation's new turn: the server keeps the thread
(``langchain_moa.threads``) and ``GET /v1/moa/threads/{thread}`` gives its messages back.
``GET /v1/moa/options`` describes what a request may set: the models served and the options.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage
from pydantic import Field, StrictStr, TypeAdapter, field_validator

from langchain_moa.aggregation import STRATEGIES
from langchain_moa.cancellation import stop
from langchain_moa.errors import MoAError
from langchain_moa.events import Answer, MoAEvent, ProposalReady, Token, observe
from langchain_moa.options import MoAOptions, per_request_options
from langchain_moa.server.openai_format import error_body, finish_reason_of, usage_of
from langchain_moa.server.requests import MAX_TOKENS, ChatRequest
from langchain_moa.server.streams import Client, Publish, sse

if TYPE_CHECKING:
    from langchain_moa.server.logs import RequestLog

__all__ = ["THREAD_PATTERN", "Run", "RunRequest", "event_stream", "options_description", "thread_record"]

logger = logging.getLogger(__name__)

THREAD_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"
"""What a thread may be named: no path, no markup, not unbounded."""


class RunRequest(ChatRequest):
    """A chat request whose answer is watched: text (no tools, no JSON format), and possibly the next
    turn of a thread the server keeps."""

    thread: StrictStr | None = Field(default=None, pattern=THREAD_PATTERN)
    """The conversation this turn continues, kept by the server (``messages`` is then the new turn)."""

    @field_validator("tools", "response_format")
    @classmethod
    def _text_answers(cls, value: Any) -> Any:
        if value is not None and getattr(value, "type", None) != "text":
            msg = "the events endpoint answers in text: send tools and formats to /v1/chat/completions"
            raise ValueError(msg)
        return value


class _End:
    """Put on a run's queue when its call has ended."""


class Run:
    """One MoA call, watched: its events queue up as they happen, each proposal's text included."""

    def __init__(self, call: Callable[[], Awaitable[AIMessage]]) -> None:
        self.queue: asyncio.Queue[MoAEvent | _End] = asyncio.Queue()

        async def watched() -> AIMessage:
            with observe(self.queue.put_nowait, proposal_text=True):
                return await call()

        self.task = asyncio.ensure_future(watched())
        self.task.add_done_callback(lambda _: self.queue.put_nowait(_End()))

    async def first(self, client: Client) -> MoAEvent | None:
        """The first event; ``None`` when the call ended without one (a cached answer). A call refused
        before any model ran raises its error here, so it is answered with its status, not a stream."""
        try:
            first = await client.unless_gone(self.queue.get())
        except BaseException:
            await stop(self.task)
            raise
        if isinstance(first, _End):
            self.task.result()
            return None
        return first


async def event_stream(
    run: Run, first: MoAEvent | None, client: Client, log: RequestLog, publish: Publish
) -> AsyncIterator[str]:
    """The run's events as server-sent events, ending in ``answer`` or ``error``."""
    client.cancel_when_gone(run.task)
    try:
        event: MoAEvent | _End = first if first is not None else _End()  # None: it ended at once
        while not isinstance(event, _End):
            if isinstance(event, Token):
                log.token(event.chunk)
            if (framed := _framed(event)) is not None:
                yield framed
            event = await run.queue.get()
        if run.task.cancelled():  # the client left
            return
        try:
            answer = run.task.result()
        except MoAError as error:
            yield sse(error_body(str(error), kind="moa_error", code="moa_run_failed")["error"], "error")
            return
        except Exception as error:  # anything else still ends the stream with an error the client reads
            logger.error("MoA run failed", exc_info=error)
            failure = error_body(f"{type(error).__name__}: {error}", kind="server_error")
            yield sse(failure["error"], "error")
            return
        log.answered(answer)
        record = publish(answer.response_metadata.get("moa"))
        answered = {"content": answer.text, "finish_reason": finish_reason_of(answer),
                    "usage": usage_of(answer), "moa": record}  # fmt: skip
        yield sse(answered, "answer")
    finally:
        await stop(run.task)
        client.close()


def _framed(event: MoAEvent) -> str | None:
    if isinstance(event, Answer):  # the call's result is sent instead, once it has returned
        return None
    if isinstance(event, Token):
        return sse({"text": event.chunk.text}, "token") if event.chunk.text else None
    if isinstance(event, ProposalReady):
        return sse(dict(event.proposal), event.kind)
    data = dataclasses.asdict(event)
    kind = data.pop("kind")
    return sse(data, kind)


def thread_record(thread: str, messages: Sequence[BaseMessage]) -> dict[str, Any]:
    """A thread's messages as ``GET /v1/moa/threads/{thread}`` gives them: role and text, and for an
    answer its usage and ``moa`` record (its proposals and costs)."""
    roles = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}
    records = []
    for message in messages:
        record: dict[str, Any] = {"role": roles.get(message.type, message.type), "content": message.text}
        if isinstance(message, AIMessage):
            record |= {"usage": usage_of(message), "moa": message.response_metadata.get("moa")}
        records.append(record)
    return {"thread": thread, "messages": records}


def options_description(models: list[str]) -> dict[str, Any]:
    """What a request may set, for a form: the models served, the request's own sampling fields, and
    the per-request MoA options, each with its documentation, type and default."""
    request = [
        _described("temperature", "Sampling temperature of every model, 0 to 2 (unset: each model's own).",
                   {"type": "number", "minimum": 0, "maximum": 2}, None),
        _described("max_tokens", "Token limit of every proposer and aggregator answer (unset: each model's).",
                   {"type": "integer", "minimum": 1, "maximum": MAX_TOKENS}, None),
    ]  # fmt: skip
    options = []
    for name in per_request_options():
        field = MoAOptions.model_fields[name]
        schema = {"enum": list(STRATEGIES)} if name == "aggregation" else _schema(field.annotation)
        default = field.default if isinstance(field.default, str | int | float | bool | None) else None
        options.append(_described(name, field.description or "", schema, default))
    return {"models": models, "request": request, "moa": options}


def _described(name: str, doc: str, schema: dict[str, Any], default: Any) -> dict[str, Any]:
    text = " ".join(doc.replace("``", "").split())
    return {"name": name, "doc": text, "schema": schema, "default": default}


def _schema(annotation: Any) -> dict[str, Any]:
    """A field's JSON schema without the ``null`` of an unset option (the form leaves it empty)."""
    schema = TypeAdapter(annotation).json_schema()
    kinds = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
    return kinds[0] if len(kinds) == 1 else schema
