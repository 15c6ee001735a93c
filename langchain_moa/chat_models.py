"""``MoAChatModel``: Mixture-of-Agents as a LangChain chat model."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Sequence
from contextvars import Context, copy_context
from typing import Any, Self, TypeVar, cast

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    BaseCallbackHandler,
    CallbackManager,
    CallbackManagerForLLMRun,
    UsageMetadataCallbackHandler,
)
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.language_models.chat_models import agenerate_from_stream, generate_from_stream
from langchain_core.messages import AIMessage, AIMessageChunk, AnyMessage, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig, ensure_config
from langchain_core.tracers.context import _configure_hooks
from langchain_core.utils import secret_from_env
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.constants import TAG_NOSTREAM
from langgraph.graph import MessagesState
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from langchain_moa.errors import MoAConfigError
from langchain_moa.graph import (
    AGGREGATOR_NODE,
    STREAM_MODES,
    MoAContext,
    MoAGraph,
    build_moa_graph,
    check_config,
    check_inputs,
    run_config,
)
from langchain_moa.models import model_label, resolve_chat_model
from langchain_moa.prompts import AGGREGATOR_PROMPT

__all__ = ["MoAChatModel"]

# Keyword that carries the parent run from stream()/astream() to _stream()/_astream(): LangChain
# calls those without the run manager that child runs must nest under.
_PARENT_RUN = "_moa_parent_run"


class MoAChatModel(BaseChatModel):
    """Mixture-of-Agents (Wang et al. 2024) as a LangChain chat model.

    Each proposer layer asks every proposer in parallel; from the second layer on, proposers also
    see the previous layer's answers; the aggregator synthesises the last layer's answers into the
    reply with the paper's aggregate-and-synthesize prompt. Backed by a LangGraph graph
    (``.graph``), it streams the aggregator's tokens, sums the usage of every call, and records
    every proposal in ``response_metadata["moa"]``.

    Example:
        >>> from langchain_moa import MoAChatModel
        >>> from langchain_moa.fakes import ScriptedChatModel
        >>> moa = MoAChatModel(
        ...     proposers=[ScriptedChatModel(answer="Paris"), ScriptedChatModel(answer="Paris, France")],
        ...     aggregator=ScriptedChatModel(answer="The capital of France is Paris."),
        ... )
        >>> moa.invoke("What is the capital of France?").content
        'The capital of France is Paris.'

        With real models: ``MoAChatModel(proposers=["Qwen/Qwen2.5-72B-Instruct-Turbo",
        "openai:gpt-4o-mini"], aggregator="Qwen/Qwen2.5-72B-Instruct-Turbo")``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    proposers: list[BaseChatModel | str]
    """Proposer models: chat models, ``"provider:model"`` strings, or bare Together model names
    (e.g. ``"Qwen/Qwen2.5-72B-Instruct-Turbo"``). Each proposer layer asks all of them."""
    aggregator: BaseChatModel | str
    """The model that synthesises the last layer's answers into the reply (string or instance)."""
    layers: int = 2
    """Layers as the paper counts them: 3 = two proposer layers + the aggregator; 1 = the
    aggregator alone (a single-model baseline). Default 2."""
    temperature: float | None = None
    """Sampling temperature passed to every proposer and aggregator call (``None``: each model's
    own)."""
    max_tokens: int | None = None
    """Token limit passed to every proposer and aggregator call (``None``: each model's own)."""
    aggregator_prompt: str = AGGREGATOR_PROMPT
    """The aggregate-and-synthesize prompt; the references follow it as ``"\\n{i}. {answer}"``.
    Default: the paper's prompt, byte for byte."""
    proposer_timeout: float | None = None
    """Seconds one proposer call may take; a slower proposer is dropped from the references.
    ``None``: no limit. (Async calls are cancelled; a sync call is abandoned to its thread.)"""
    min_proposals: int = 1
    """Answers each proposer layer must keep, or the call raises ``MoAError``. Default 1."""
    proposal_quorum: int | None = None
    """Go on as soon as this many of a layer's proposers have answered, cancelling the slower ones
    (cut proposals are recorded with ``cut=True``). ``None``: wait for every proposer."""
    layer_deadline: float | None = None
    """Seconds after which a layer goes on with the answers it has, cancelling the rest, provided
    ``min_proposals`` are in (else it waits until they are). ``None``: no deadline."""
    max_concurrency: int | None = None
    """Bound on simultaneous model calls across every call of this model (``None``: no bound)."""
    max_retries: int | None = None
    """Retries of each proposer call that raises (exponential backoff with jitter). ``None``: leave
    retries to each model's own client (most retry rate limits and 5xx already). The aggregator
    streams its answer and relies on its own client's retries."""
    aggregator_timeout: float | None = None
    """Seconds the aggregator's answer may take; past it the call raises ``AggregatorError``.
    ``None``: no limit."""
    timeout: float | None = None
    """LangChain's standard per-call time limit: the default of ``proposer_timeout`` and
    ``aggregator_timeout``."""
    stop: list[str] | None = None
    """Stop sequences for the aggregator's answer (proposers answer in full)."""
    api_key: SecretStr | None = Field(
        default_factory=secret_from_env("TOGETHER_API_KEY", default=None), alias="together_api_key"
    )
    """Together API key for model strings without a provider; defaults to ``TOGETHER_API_KEY``."""

    _graph: MoAGraph = PrivateAttr()
    _graph_key: tuple[Any, ...] = PrivateAttr(default=())
    _models: list[BaseChatModel] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _build_graph(self) -> Self:
        # Built here, so that bad configuration fails at construction, before any model is called.
        self._current_graph()
        return self

    def _graph_options(self) -> dict[str, Any]:
        return {
            "layers": self.layers,
            "aggregator_prompt": self.aggregator_prompt,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "proposer_timeout": self.proposer_timeout if self.proposer_timeout is not None else self.timeout,
            "aggregator_timeout": self.aggregator_timeout
            if self.aggregator_timeout is not None
            else self.timeout,
            "max_retries": self.max_retries,
            "min_proposals": self.min_proposals,
            "proposal_quorum": self.proposal_quorum,
            "layer_deadline": self.layer_deadline,
            "max_concurrency": self.max_concurrency,
        }

    def _current_graph(self) -> MoAGraph:
        """The graph of the current field values, rebuilt when a field was changed since."""
        options = self._graph_options()
        key = (
            *[p if isinstance(p, str) else id(p) for p in self.proposers],
            self.aggregator if isinstance(self.aggregator, str) else id(self.aggregator),
            hash(self.api_key.get_secret_value()) if self.api_key else None,  # never the key itself
            *options.items(),
        )
        if key != self._graph_key:
            check_config(self.proposers, **options)  # cheap checks before any model is made
            resolve = functools.partial(resolve_chat_model, api_key=self.api_key)
            proposers = [resolve(p) for p in self.proposers] if self.layers > 1 else []
            aggregator = resolve(self.aggregator)
            # The graph runs inside this model's call: it must not write into a caller's checkpoints.
            self._graph = build_moa_graph(proposers, aggregator, **options, checkpointer=False)
            self._models, self._graph_key = [*proposers, aggregator], key
        return self._graph

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> MoAChatModel:
        """A model configured by a named preset (see ``langchain_moa.presets``).

        Example:
            >>> moa = MoAChatModel.from_preset("local", max_tokens=128)  # doctest: +SKIP
        """
        from langchain_moa.presets import preset_fields

        return cls(**preset_fields(name, **overrides))

    @property
    def graph(self) -> MoAGraph:
        """The compiled LangGraph graph behind this model (draw it with ``.get_graph()``)."""
        return self._current_graph()

    @property
    def _llm_type(self) -> str:
        return "moa"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        # The cache key: two configurations that could answer differently must never share it.
        return {
            "proposers": [_identity(p) for p in self.proposers],
            "aggregator": _identity(self.aggregator),
            "layers": self.layers,
            "aggregator_prompt": self.aggregator_prompt,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stop": self.stop,
            # These change which proposals the aggregator sees, hence the answer.
            "min_proposals": self.min_proposals,
            "proposal_quorum": self.proposal_quorum,
            "layer_deadline": self.layer_deadline,
            "proposer_timeout": self.proposer_timeout,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        model = kwargs.get("model")  # a call-time model override goes to the aggregator
        params = LangSmithParams(
            ls_provider="moa",
            ls_model_name=model if isinstance(model, str) else self._aggregator_label(),
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if temperature is not None:
            params["ls_temperature"] = temperature
        if max_tokens is not None:
            params["ls_max_tokens"] = max_tokens
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    def _get_invocation_params(self, stop: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
        kwargs.pop(_PARENT_RUN, None)
        return super()._get_invocation_params(stop=stop, **kwargs)

    def _aggregator_label(self) -> str:
        return self.aggregator if isinstance(self.aggregator, str) else model_label(self.aggregator)

    # -- tools and structured output go to the aggregator -------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Any],
        *,
        tool_choice: str | dict | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Give ``tools`` to the aggregator, which makes the tool calls.

        Proposers get no tools; they see earlier tool calls and results as plain text.
        """
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    # -- running the graph --------------------------------------------------------------------

    def _should_stream(self, *, async_api: bool, **kwargs: Any) -> bool:
        # Only explicit stream()/astream() take the _stream path. invoke() goes through _generate,
        # the one place LangChain hands over the run manager; _generate forwards tokens itself.
        return bool(kwargs.get("stream")) and super()._should_stream(async_api=async_api, **kwargs)

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        config, parent = _with_run_id(config)
        chunks = cast(
            "Generator[AIMessageChunk]",
            super().stream(input, config, stop=stop, **{_PARENT_RUN: parent, **kwargs}),
        )
        try:
            yield from chunks
        finally:  # an abandoned stream stops the graph run at once, not when it is garbage-collected
            chunks.close()
            parent.stop()

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        config, parent = _with_run_id(config)
        chunks = cast(
            "AsyncGenerator[AIMessageChunk]",
            super().astream(input, config, stop=stop, **{_PARENT_RUN: parent, **kwargs}),
        )
        try:
            async for chunk in chunks:
                yield chunk
        finally:  # an abandoned stream stops the graph run at once, not when it is garbage-collected
            await chunks.aclose()
            await parent.astop()

    def _graph_run(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        callbacks: CallbackManager,
        kwargs: dict[str, Any],
    ) -> tuple[MoAGraph, MessagesState, RunnableConfig, MoAContext]:
        _check_messages(messages)
        graph = self._current_graph()
        check_inputs(messages, self._models)
        kwargs.pop(_PARENT_RUN, None)
        stop = stop or self.stop
        aggregator_kwargs = {**kwargs, "stop": stop} if stop else dict(kwargs)
        context = MoAContext(
            temperature=aggregator_kwargs.pop("temperature", None),
            max_tokens=aggregator_kwargs.pop("max_tokens", None),
            aggregator_kwargs=aggregator_kwargs,
        )
        config = run_config(self.layers, callbacks=callbacks)
        # Copies: the graph gives messages ids, and the caller's messages must stay as they were.
        copies: list[AnyMessage] = [cast("AnyMessage", m.model_copy()) for m in messages]
        return graph, MessagesState(messages=copies), config, context

    def _chunks(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        callbacks: CallbackManager,
        kwargs: dict[str, Any],
    ) -> Iterator[ChatGenerationChunk]:
        parent: _ParentRun | None = kwargs.get(_PARENT_RUN)
        graph, state, config, context = self._graph_run(messages, stop, callbacks, kwargs)
        answer = _Answer()
        events = cast(
            "Generator[Any]",
            graph.stream(state, config, context=context, stream_mode=STREAM_MODES),
        )
        if parent is not None:
            parent.graph_run = events
        try:
            for event in _in_context(events, _context_without_usage_hooks()):
                if token := answer.read(event):
                    yield token
        finally:
            events.close()
        yield answer.last_chunk()

    async def _achunks(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        callbacks: CallbackManager,
        kwargs: dict[str, Any],
    ) -> AsyncIterator[ChatGenerationChunk]:
        parent: _ParentRun | None = kwargs.get(_PARENT_RUN)
        graph, state, config, context = self._graph_run(messages, stop, callbacks, kwargs)
        answer = _Answer()
        events = cast(
            "AsyncGenerator[Any]",
            graph.astream(state, config, context=context, stream_mode=STREAM_MODES),
        )
        if parent is not None:
            parent.graph_run = events
        try:
            async for event in _ain_context(events, _context_without_usage_hooks()):
                if token := answer.read(event):
                    yield token
        finally:
            await events.aclose()
        yield answer.last_chunk()

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        chunks = self._chunks(messages, stop, _child_callbacks(run_manager, kwargs), kwargs)
        if run_manager is None:
            return generate_from_stream(chunks)
        return generate_from_stream(_forward_tokens(chunks, run_manager))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        chunks = self._achunks(messages, stop, _child_callbacks(run_manager, kwargs), kwargs)
        if run_manager is None:
            return await agenerate_from_stream(chunks)
        return await agenerate_from_stream(_aforward_tokens(chunks, run_manager))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        yield from self._chunks(messages, stop, _child_callbacks(run_manager, kwargs, self), kwargs)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk in self._achunks(messages, stop, _child_callbacks(run_manager, kwargs, self), kwargs):
            yield chunk


def _identity(model: BaseChatModel | str) -> str:
    if isinstance(model, str):
        return model
    return f"{model._llm_type}:{sorted(model._identifying_params.items())}"


def _check_messages(messages: Sequence[BaseMessage]) -> None:
    if not messages:
        msg = "the conversation is empty: pass at least one message, e.g. moa.invoke('Hello')"
        raise MoAConfigError(msg)


class _ParentRun:
    """The run ``stream()`` opens, described for ``_stream`` (see ``_PARENT_RUN``); it also keeps
    the graph run, which ``stream()`` stops when its caller abandons it."""

    def __init__(self, run_id: uuid.UUID, config: RunnableConfig) -> None:
        self.run_id = run_id
        self.config = config
        self.graph_run: Any = None

    def stop(self) -> None:
        if self.graph_run is not None:
            self.graph_run.close()

    async def astop(self) -> None:
        if self.graph_run is not None:
            await self.graph_run.aclose()


def _with_run_id(config: RunnableConfig | None) -> tuple[RunnableConfig, _ParentRun]:
    """The config ``stream()`` opens its run with, and that run described for ``_stream``.

    The callbacks are configured here, once: ``stream()`` reuses these handler objects, so a tracer
    that sees the MoA run start is the one its child runs report to.
    """
    config = ensure_config(config)
    run_id = config.get("run_id") or uuid.uuid4()
    callbacks = CallbackManager.configure(
        config.get("callbacks"), None, False, config.get("tags"), None, config.get("metadata"), None
    )
    config = {**config, "run_id": run_id, "callbacks": callbacks}
    return config, _ParentRun(run_id, config)


def _child_callbacks(
    run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
    kwargs: dict[str, Any],
    model: MoAChatModel | None = None,
) -> CallbackManager:
    """Callbacks for the graph: every model call inside becomes a child run of the MoA run.

    Children are tagged ``nostream`` so a surrounding LangGraph ``messages`` stream shows the MoA
    answer once rather than every proposer's tokens too, and they do not report to usage
    handlers: the MoA answer already carries the summed usage of all of them.
    """
    parent: _ParentRun | None = kwargs.get(_PARENT_RUN)
    if run_manager is not None:
        run_id = run_manager.run_id
        handlers, tags, metadata = (
            run_manager.inheritable_handlers,
            run_manager.inheritable_tags,
            run_manager.inheritable_metadata,
        )
    elif parent is not None and model is not None:
        configured = CallbackManager.configure(
            parent.config.get("callbacks"), None, False, None, model.tags, None, model.metadata
        )
        run_id = parent.run_id
        handlers, tags, metadata = (
            configured.inheritable_handlers,
            configured.inheritable_tags,
            configured.inheritable_metadata,
        )
    else:
        return CallbackManager(handlers=[])
    manager = CallbackManager(handlers=[], parent_run_id=run_id)
    manager.set_handlers([h for h in handlers if not _counts_usage(h)])
    manager.add_tags([*tags, TAG_NOSTREAM])
    manager.add_metadata(metadata)
    return manager


def _counts_usage(handler: BaseCallbackHandler) -> bool:
    return isinstance(handler, UsageMetadataCallbackHandler)


def _context_without_usage_hooks() -> Context | None:
    """A copy of the current context with ``get_usage_metadata_callback()`` handlers unset.

    Those handlers are not passed down as callbacks: LangChain re-attaches them to every run
    configured while their context variable is set. ``None`` when none is active.
    """
    hooked = [var for var, *_ in _configure_hooks if isinstance(var.get(), UsageMetadataCallbackHandler)]
    if not hooked:
        return None
    context = copy_context()
    for var in hooked:
        context.run(var.set, None)
    return context


_T = TypeVar("_T")


def _in_context(iterator: Iterator[_T], context: Context | None) -> Iterator[_T]:
    """Run each step of ``iterator`` inside ``context`` (as is when ``None``)."""
    if context is None:
        yield from iterator
        return
    done = object()
    while (item := context.run(next, iterator, done)) is not done:
        yield item  # type: ignore[misc]


async def _ain_context(iterator: AsyncIterator[_T], context: Context | None) -> AsyncIterator[_T]:
    """Run each step of ``iterator`` inside ``context`` (as is when ``None``)."""
    if context is None:
        async for item in iterator:
            yield item
        return
    while True:
        try:
            yield await asyncio.create_task(anext(iterator), context=context)  # type: ignore[arg-type]
        except StopAsyncIteration:
            return


class _Answer:
    """Reads the graph's stream: the aggregator's tokens as they come, then the final answer."""

    def __init__(self) -> None:
        self.message: AIMessage | None = None

    def read(self, event: Any) -> ChatGenerationChunk | None:
        """The token a ``(mode, data)`` event carries, if it is a non-empty aggregator token."""
        mode, data = event
        if mode == "updates" and AGGREGATOR_NODE in data:
            self.message = data[AGGREGATOR_NODE]["messages"][-1]
        elif mode == "custom" and data.get("event") == "token":
            chunk: AIMessageChunk = data["chunk"]
            if chunk.content or chunk.tool_call_chunks:
                # The aggregator's id, usage and metadata stay out: the MoA run sends its own last.
                return ChatGenerationChunk(
                    message=AIMessageChunk(content=chunk.content, tool_call_chunks=chunk.tool_call_chunks)
                )
        return None

    def last_chunk(self) -> ChatGenerationChunk:
        """The closing chunk: summed usage and the MoA metadata."""
        if self.message is None:  # the graph always ends in the aggregator; this would be a bug
            msg = "the MoA graph finished without an answer"
            raise RuntimeError(msg)
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=self.message.usage_metadata,
                response_metadata=self.message.response_metadata,
                chunk_position="last",
            )
        )


def _forward_tokens(
    chunks: Iterator[ChatGenerationChunk], run_manager: CallbackManagerForLLMRun
) -> Iterator[ChatGenerationChunk]:
    for chunk in chunks:
        run_manager.on_llm_new_token(chunk.text, chunk=chunk)
        yield chunk


async def _aforward_tokens(
    chunks: AsyncIterator[ChatGenerationChunk], run_manager: AsyncCallbackManagerForLLMRun
) -> AsyncIterator[ChatGenerationChunk]:
    async for chunk in chunks:
        await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
        yield chunk
