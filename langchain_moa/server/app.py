"""The HTTP app: OpenAI's ``GET /v1/models`` and ``POST /v1/chat/completions`` over MoA, the MoA's own
endpoints (``moa_api``: the run's events, threads, options) and the page at ``/`` (``page``).

Errors use OpenAI's JSON and status codes: 400 for a bad request (the field named), 401 for a missing
or wrong key (compared in constant time; the key is never logged), 404 for an unknown model, 502 when
the MoA run fails (every failed proposer named). A client that goes away cancels its MoA run, which
frees local models' slots. The server keeps serving after each of them.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response, StreamingResponse
from langchain_core.output_parsers.openai_tools import JsonOutputKeyToolsParser
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from langchain_moa.costs import BudgetExceeded
from langchain_moa.errors import InvalidConversationError, MoAConfigError, MoAError
from langchain_moa.server.hosts import HostCheck, foreign_page
from langchain_moa.server.limits import Limits, Refused, read_body
from langchain_moa.server.logs import RequestLog
from langchain_moa.server.moa_api import (
    THREAD_PATTERN,
    Run,
    RunRequest,
    event_stream,
    options_description,
    thread_record,
)
from langchain_moa.server.openai_format import completion, error_body
from langchain_moa.server.openapi import CHAT_OPENAPI, ERROR_RESPONSE, EVENTS_OPENAPI, openapi
from langchain_moa.server.page import add_page
from langchain_moa.server.registry import ModelRegistry
from langchain_moa.server.requests import ChatRequest, ResponseFormat, parse
from langchain_moa.server.signing import ProposalSigner
from langchain_moa.server.streams import Client, ClientGone, Publish, answer_events, whole_events
from langchain_moa.threads import Threads

if TYPE_CHECKING:
    from langchain_core.messages import AIMessage, BaseMessage


__all__ = ["create_app"]


logger = logging.getLogger(__name__)

Asked = TypeVar("Asked", bound=ChatRequest)
Handler = Callable[[Request, RequestLog], Awaitable[Response]]


def _error(
    status: int, message: str, *, kind: str, param: str | None = None, code: str | None = None
) -> Response:
    return JSONResponse(error_body(message, kind=kind, param=param, code=code), status_code=status)


def create_app(
    registry: ModelRegistry,
    *,
    api_key: str | None = None,
    limits: Limits | None = None,
    signing_key: bytes | None = None,
    threads: Threads | None = None,
) -> FastAPI:
    """The app serving ``registry``; with ``api_key``, every request must carry it as a bearer token.
    ``signing_key`` signs the proposals clients carry between calls (default: one of this process's;
    replicas behind one address must share one). ``threads`` keeps the page's conversations (default:
    ``langchain_moa.threads.threads_path()``)."""
    limits = limits or Limits()
    threads = threads or Threads()
    signer = ProposalSigner(signing_key)
    app = FastAPI(title="langchain-moa", docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    app.openapi = lambda: openapi(app, registry.names())  # type: ignore[method-assign]
    expected = api_key.encode() if api_key else None
    if limits.cors_origins:
        headers = ["authorization", "content-type"]
        app.add_middleware(
            CORSMiddleware, allow_origins=list(limits.cors_origins), allow_methods=["GET", "POST"],
            allow_headers=headers,
        )  # fmt: skip

    app.add_middleware(HostCheck, allowed=limits.allowed_hosts)

    @app.exception_handler(Exception)
    async def failed(request: Request, error: Exception) -> Response:
        # A defect of ours still answers in OpenAI's shape (a client reads it; the connection lives on).
        logger.error("%s %s failed", request.method, request.url.path, exc_info=error)
        return _error(500, f"the server failed: {type(error).__name__}", kind="server_error")

    @app.exception_handler(StarletteHTTPException)
    async def not_found(request: Request, error: StarletteHTTPException) -> Response:
        # Unknown routes and wrong methods answer in OpenAI's error shape too.
        message = f"{request.method} {request.url.path}: {error.detail}"
        return _error(error.status_code, message, kind="invalid_request_error")

    # Checked in each endpoint, not in an HTTP middleware: Starlette's middleware wraps the request's
    # messages and would hide a client's disconnect from a streaming answer.
    def refused(request: Request) -> Response | None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if expected is not None and not (
            scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)
        ):  # the scheme is case-insensitive (RFC 9110); the key is compared in constant time
            return _error(401, "Incorrect or missing API key: send it as 'Authorization: Bearer <key>'",
                          kind="invalid_request_error", code="invalid_api_key")  # fmt: skip
        return None

    @app.get("/v1/models", responses={"default": ERROR_RESPONSE})
    async def models(request: Request) -> Response:
        if refusal := refused(request):
            return refusal
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "langchain-moa"}
            for name in registry.names()
        ]
        return JSONResponse({"object": "list", "data": data})

    def logged(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """``handler`` with its request logged once the answer has been sent (a stream's end)."""

        async def endpoint(request: Request) -> Response:
            log = RequestLog(request.method, request.url.path, content=limits.log_content)
            response = await handler(request, log)
            log.status = response.status_code
            if isinstance(response, StreamingResponse):
                response.background = BackgroundTask(log.close)
            else:
                log.close()
            return response

        return endpoint

    async def model_for(request: Request, log: RequestLog, kind: type[Asked]) -> tuple[Asked, Any] | Response:
        """The request, checked by its model ``kind``, and the MoA it asks for (with its own options
        and tools), or the refusal to send."""
        if refusal := refused(request):
            return refusal
        body = b""
        try:
            body = await read_body(request, limits)
            asked = parse(body, kind)
        except Refused as bad:
            log.model = _model_named(body)  # the log says which model a refused request asked for
            return _error(bad.status, str(bad), kind="invalid_request_error", param=bad.param, code=bad.code)
        except ClientDisconnect:
            return Response(status_code=499)
        name = log.model = asked.model
        log.asked(asked)
        if name not in registry.names():
            return _error(404, f"The model {name!r} does not exist; models: {', '.join(registry.names())}",
                          kind="invalid_request_error", param="model", code="model_not_found")  # fmt: skip
        try:  # built on its first request, off the event loop (a local model's server starts then)
            moa: Any = await asyncio.to_thread(registry.get, name)
        except MoAError as error:
            return _error(503, f"The model {name!r} cannot run here: {error}", kind="invalid_request_error",
                          param="model", code="model_unavailable")  # fmt: skip
        if asked.moa:
            try:
                moa = await asyncio.to_thread(registry.get, name, asked.moa)
            except MoAConfigError as error:
                field = next((f for f in asked.moa if str(error).startswith(f)), None)
                return _error(400, f"moa: {error}", kind="invalid_request_error",
                              param=f"moa.{field}" if field else "moa")  # fmt: skip
        if (asked.tools or asked.structured) and (reason := moa.why_no_tools()):
            param = "tools" if asked.tools else "response_format"
            return _error(400, f"{param}: this MoA cannot honour it: {reason}", kind="invalid_request_error",
                          param=param)  # fmt: skip
        if asked.tools:
            tools = [tool.model_dump(exclude_none=True) for tool in asked.tools]
            try:
                moa = moa.bind_tools(tools, **asked.tool_kwargs())
            except (ValueError, TypeError) as error:
                return _error(400, f"tools: {error}", kind="invalid_request_error", param="tools")
        return asked, moa

    def publisher(asked: ChatRequest, ignored: list[dict[str, Any]]) -> Publish:
        def publish(moa: dict[str, Any] | None) -> dict[str, Any] | None:
            """The ``moa`` record a client sees: signed, and saying which carried ones were ignored."""
            if moa is not None and ignored:
                moa = {**moa, "ignored_carried_proposals": ignored}
            return signer.sign(moa, asked.transcript())

        return publish

    @app.post("/v1/chat/completions", openapi_extra=CHAT_OPENAPI)
    @logged
    async def chat(request: Request, log: RequestLog) -> Response:
        prepared = await model_for(request, log, ChatRequest)
        if isinstance(prepared, Response):
            return prepared
        chat_request, moa = prepared
        name = chat_request.model
        try:
            (messages, ignored), kwargs = chat_request.conversation(signer), chat_request.call_kwargs()
            log.ignored = len(ignored)
            publish = publisher(chat_request, ignored)
            client = Client(request)
            if chat_request.structured:  # the whole answer first: it is checked before it is sent
                assert chat_request.response_format is not None
                try:
                    work = _structured(moa, messages, kwargs, chat_request.response_format)
                    answer = await client.unless_gone(work)
                finally:
                    client.close()
                log.answered(answer)
                if chat_request.stream:
                    return StreamingResponse(whole_events(answer, name, publish, chat_request.include_usage),
                                             media_type="text/event-stream")  # fmt: skip
                return JSONResponse(completion(answer, name, publish(answer.response_metadata.get("moa"))))
            if not chat_request.stream:
                try:
                    answer = await client.unless_gone(moa.ainvoke(messages, **kwargs))
                finally:
                    client.close()
                log.answered(answer)
                return JSONResponse(completion(answer, name, publish(answer.response_metadata.get("moa"))))
            chunks = moa.astream(messages, **kwargs)
            try:  # the first token: a run that fails before it is still a 502, not a broken stream
                first = await client.unless_gone(anext(chunks))
            except BaseException:
                client.close()
                raise
            events = answer_events(
                chunks, first, name, client, log, publish, include_usage=chat_request.include_usage
            )
            return StreamingResponse(events, media_type="text/event-stream")
        except Exception as error:
            return _failed(error)

    @app.post("/v1/moa/events", openapi_extra=EVENTS_OPENAPI)
    @logged
    async def run_events(request: Request, log: RequestLog) -> Response:
        if refusal := cross_origin(request):
            return refusal
        prepared = await model_for(request, log, RunRequest)
        if isinstance(prepared, Response):
            return prepared
        asked, moa = prepared
        try:
            (messages, ignored), kwargs = asked.conversation(signer), asked.call_kwargs()
            log.ignored = len(ignored)

            def call() -> Awaitable[AIMessage]:
                if asked.thread is None:
                    return moa.ainvoke(messages, **kwargs)  # type: ignore[no-any-return]
                return threads.answer(moa.bind(**kwargs), asked.thread, messages)

            run = Run(call)
            client = Client(request)
            try:
                first = await run.first(client)
            except BaseException:
                client.close()
                raise
            events = event_stream(run, first, client, log, publisher(asked, ignored))
            headers = {"Cache-Control": "no-store"}
            return StreamingResponse(events, media_type="text/event-stream", headers=headers)
        except Exception as error:
            return _failed(error)

    @app.get("/v1/moa/threads/{thread}", responses={"default": ERROR_RESPONSE})
    async def thread_messages(request: Request, thread: str) -> Response:
        if refusal := refused(request) or cross_origin(request):
            return refusal
        if not re.fullmatch(THREAD_PATTERN, thread):
            return _error(400, f"thread: {thread[:100]!r} is not a thread name ({THREAD_PATTERN})",
                          kind="invalid_request_error", param="thread")  # fmt: skip
        return JSONResponse(thread_record(thread, await threads.messages(thread)))

    @app.get("/v1/moa/options", responses={"default": ERROR_RESPONSE})
    async def options(request: Request) -> Response:
        if refusal := refused(request) or cross_origin(request):
            return refusal
        return JSONResponse(options_description(registry.names()))

    def cross_origin(request: Request) -> Response | None:
        if (reason := foreign_page(request.headers, limits.cors_origins)) is not None:
            return _error(403, reason, kind="invalid_request_error", code="cross_origin")
        return None

    add_page(app)
    return app


def _failed(error: Exception) -> Response:
    """The answer to a call that failed before its answer started (re-raised if it is no MoA failure)."""
    if isinstance(error, ClientGone):
        return Response(status_code=499)
    if isinstance(error, BudgetExceeded):  # refused before any model ran
        return _error(400, str(error), kind="invalid_request_error", param="moa.max_cost", code="over_budget")
    if isinstance(error, MoAConfigError | InvalidConversationError):
        return _error(400, str(error), kind="invalid_request_error", param="messages")
    if isinstance(error, MoAError):
        return _error(502, str(error), kind="moa_error", code="moa_run_failed")
    raise error


def _model_named(body: bytes) -> str | None:
    """The ``model`` a body names, if it is JSON enough to say."""
    try:
        model = json.loads(body).get("model")
    except (ValueError, AttributeError, RecursionError):  # not JSON, not an object, nested too deep
        return None
    return model if isinstance(model, str) else None


async def _structured(
    moa: Any, messages: list[BaseMessage], kwargs: dict[str, Any], response_format: ResponseFormat
) -> AIMessage:
    """The answer in JSON (``json_object``: the aggregator's JSON mode) or in a schema (``json_schema``:
    the aggregator calls the schema as a function, as LangChain's ``with_structured_output`` asks), its
    text the JSON; ``MoAError`` (a 502) when the aggregator did not answer so."""
    if response_format.type == "json_object":
        answer: AIMessage = await moa.ainvoke(messages, response_format={"type": "json_object"}, **kwargs)
        try:
            json.loads(answer.text)
        except json.JSONDecodeError:
            msg = f"the aggregator's answer is not JSON (response_format json_object): {answer.text[:200]!r}"
            raise MoAError(msg) from None
        return answer
    function = response_format.function()
    raw: AIMessage = await moa.bind_tools([function], tool_choice="any").ainvoke(messages, **kwargs)
    parsed = JsonOutputKeyToolsParser(key_name=function["name"], first_tool_only=True).invoke(raw)
    if not isinstance(parsed, dict):
        msg = (
            f"the aggregator did not answer in the schema {function['name']!r} (response_format "
            f"json_schema); it replied: {raw.text[:200]!r}"
        )
        raise MoAError(msg)
    return raw.model_copy(update={"content": json.dumps(parsed, ensure_ascii=False), "tool_calls": []})
