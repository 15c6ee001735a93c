"""The Mixture-of-Agents graph: layers of parallel proposers, joined, then the aggregator.

``build_moa_graph`` reads like the paper's figure::

    START ─┬─ layer 1 #1 ─┬─ layer 1 done ─┬─ layer 2 #1 ─┬─ layer 2 done ── aggregator ── END
           └─ layer 1 #2 ─┘                └─ layer 2 #2 ─┘

Every proposer is its own node, so LangGraph Studio draws who is in each layer. Proposer nodes never
raise: a failure or timeout is recorded in the state and the proposal is dropped from the references
(a raising node would cancel its siblings, and a join can then skip the aggregator). The join node of
each layer raises ``MoAError`` when fewer than ``min_proposals`` answers survive.

The graph's input is LangGraph's ``MessagesState``; its answer is appended to ``messages`` as an
``AIMessage`` with the summed usage and every proposal in ``response_metadata["moa"]``. Progress and
the aggregator's tokens are sent as custom stream events (``stream_mode="custom"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import queue
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextvars import copy_context
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
    message_chunk_to_message,
)
from langchain_core.messages.ai import UsageMetadata, add_ai_message_chunks, add_usage
from langchain_core.runnables import Runnable, RunnableConfig

# LangGraph's own node wrapper (langgraph-prebuilt's ToolNode uses it too): it takes a sync and an async
# function and inspects their signatures once, where RunnableLambda does it on every call.
from langgraph._internal._runnable import RunnableCallable
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import get_runtime
from langgraph.types import Checkpointer, StreamMode
from pydantic import SecretStr

from langchain_moa._limits import CallLimit
from langchain_moa._messages import as_chunk
from langchain_moa._race import LayerRace, ProposalCut, RaceRules, RaceTrack
from langchain_moa.errors import AggregatorError, MoAConfigError, MoAError
from langchain_moa.models import model_label, resolve_chat_model
from langchain_moa.prompts import AGGREGATOR_PROMPT, inject_references

__all__ = [
    "AGGREGATOR_NODE",
    "MoAContext",
    "MoAState",
    "Proposal",
    "build_moa_graph",
    "check_config",
    "check_inputs",
    "proposer_view",
]

ChatRunnable = Runnable[LanguageModelInput, BaseMessage]

AGGREGATOR_NODE = "aggregator"
"""Name of the aggregator node (the last node of every MoA graph)."""

STREAM_MODES: list[StreamMode] = ["custom", "updates"]
"""How to watch a run: custom events bring progress and tokens; the aggregator's update, the answer."""


def run_config(layers: int, **config: Any) -> RunnableConfig:
    """Run configuration for a graph of ``layers`` layers (each layer takes two supersteps)."""
    return RunnableConfig(recursion_limit=2 * layers + 10, **config)  # type: ignore[typeddict-item]


class Proposal(TypedDict):
    """One proposer's answer (or failure) in one layer."""

    node: str
    """Graph node that produced it."""
    layer: int
    """Proposer layer, from 1."""
    index: int
    """Position in the proposer list, from 1."""
    model: str
    """The proposer model's name."""
    content: str | None
    """The answer's text; ``None`` when the proposer failed."""
    error: str | None
    """Why the proposer failed (``"TimeoutError: ..."``); ``None`` when it answered."""
    usage: UsageMetadata | None
    """Token usage the provider reported, if any."""
    latency_s: float
    """Seconds the call took (or until it was given up)."""
    cut: bool
    """Whether ``proposal_quorum`` or ``layer_deadline`` cut this proposer short."""


def _merge_proposals(old: dict[str, Proposal], new: dict[str, Proposal]) -> dict[str, Proposal]:
    # Keyed by node: each turn overwrites every entry before anyone reads it.
    return {**old, **new}


class MoAState(MessagesState):
    """Graph state: the conversation plus this turn's proposals, keyed by node name."""

    proposals: Annotated[dict[str, Proposal], _merge_proposals]


@dataclass(frozen=True)
class MoAContext:
    """Per-run options (LangGraph run context); ``None`` keeps the graph's default."""

    temperature: float | None = None
    """Sampling temperature for every proposer and aggregator call."""
    max_tokens: int | None = None
    """Token limit of every proposer and aggregator answer."""
    aggregator_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Extra call arguments for the aggregator alone: ``tools``/``tool_choice`` (bound with its own
    ``bind_tools``), ``stop`` and any other invocation keyword."""


MoAGraph = CompiledStateGraph[MoAState, MoAContext, MessagesState, MoAState]
"""A compiled MoA graph."""


@dataclass(frozen=True)
class _Settings:
    """What every node of one graph shares."""

    prompt: str
    temperature: float | None
    max_tokens: int | None
    max_retries: int | None
    aggregator_timeout: float | None
    limit: CallLimit
    races: RaceTrack

    def with_retries(self, model: ChatRunnable) -> ChatRunnable:
        """``model`` retried on any exception, when retries are asked for."""
        if not self.max_retries:
            return model
        return model.with_retry(stop_after_attempt=self.max_retries + 1, wait_exponential_jitter=True)

    def call_kwargs(self) -> dict[str, Any]:
        """Sampling arguments of this run: the run context overrides the graph's defaults."""
        context = _run_context()
        temperature = _first_set(context.temperature, self.temperature)
        max_tokens = _first_set(context.max_tokens, self.max_tokens)
        kwargs: dict[str, Any] = {}
        if temperature is not None:
            kwargs["temperature"] = temperature
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        return kwargs


def _first_set(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _run_context() -> MoAContext:
    context = get_runtime().context
    return context if isinstance(context, MoAContext) else MoAContext()


def _emit(event: dict[str, Any]) -> None:
    get_stream_writer()(event)


def proposer_view(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The conversation as a text-only model can read it.

    Proposers get no tools, so tool calls become assistant text and tool results become user text;
    every other message is kept as is.
    """
    tool_names: dict[str, str] = {}
    view: list[BaseMessage] = []
    for message in messages:
        if isinstance(message, AIMessage) and message.tool_calls:
            calls = []
            for call in message.tool_calls:
                tool_names[call.get("id") or ""] = call["name"]
                calls.append(f"{call['name']}({json.dumps(call['args'], ensure_ascii=False)})")
            text = message.text
            view.append(AIMessage(content=(text + "\n" if text else "") + "Called " + "; ".join(calls)))
        elif isinstance(message, ToolMessage):
            name = message.name or tool_names.get(message.tool_call_id, "tool")
            view.append(HumanMessage(content=f"Result of {name}: {message.text}"))
        else:
            view.append(message)
    return view


# Content block types and the model-profile flag that says whether a model accepts them.
_MEDIA_PROFILE_KEYS = {
    "image": "image_inputs",
    "image_url": "image_inputs",
    "audio": "audio_inputs",
    "input_audio": "audio_inputs",
    "file": "pdf_inputs",
    "video": "video_inputs",
}


def check_inputs(messages: Sequence[BaseMessage], models: Sequence[BaseChatModel]) -> None:
    """Refuse media a model's profile says it cannot take, before any model is called.

    Raises:
        MoAConfigError: naming the message, the kind of content and the model.
    """
    for number, message in enumerate(messages, start=1):
        blocks = message.content if isinstance(message.content, list) else []
        kinds = [
            str(b.get("type")) for b in blocks if isinstance(b, dict) and b.get("type") in _MEDIA_PROFILE_KEYS
        ]
        for kind in kinds:
            key = _MEDIA_PROFILE_KEYS[kind]
            for model in models:
                if (getattr(model, "profile", None) or {}).get(key) is False:
                    msg = (
                        f"message {number} has {kind} content, which {model_label(model)} does not "
                        f"accept ({key}=False in its profile): send text only, or choose models that take it"
                    )
                    raise MoAConfigError(msg)


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class _ProposerNode:
    """One proposer in one layer: answers the conversation, seeing the previous layer's answers."""

    def __init__(
        self,
        node: str,
        model: BaseChatModel,
        *,
        layer: int,
        index: int,
        layer_size: int,
        references_from: Sequence[str],
        settings: _Settings,
    ) -> None:
        self.node = node
        self.layer_size = layer_size
        self.model = settings.with_retries(model)
        self.label = model_label(model)
        self.layer = layer
        self.index = index
        self.references_from = list(references_from)
        self.settings = settings

    def runnable(self) -> RunnableCallable:
        return RunnableCallable(self.invoke, self.ainvoke, name=self.node)

    def _prompt(self, state: MoAState) -> list[BaseMessage]:
        references = _references(state, self.references_from)
        return inject_references(proposer_view(state["messages"]), self.settings.prompt, references)

    def _record(
        self, race: LayerRace, started: float, message: BaseMessage | None, error: BaseException | None
    ) -> dict[str, Any]:
        proposal = Proposal(
            node=self.node,
            layer=self.layer,
            index=self.index,
            model=self.label,
            content=None,
            error=None,
            usage=None,
            latency_s=round(time.perf_counter() - started, 4),
            cut=isinstance(error, ProposalCut),
        )
        if error is None and message is not None:
            proposal["usage"] = getattr(message, "usage_metadata", None)  # tokens spent, even on nothing
            if message.text.strip():
                proposal["content"] = message.text
            else:
                proposal["error"] = "EmptyAnswer: the model returned no text"
        elif isinstance(error, ProposalCut):
            proposal["error"] = str(error)
        else:
            proposal["error"] = _error_text(error) if error else "no answer"
        race.record(answered=proposal["error"] is None)
        _emit({"event": "proposal", **proposal})
        return {"proposals": {self.node: proposal}}

    def _started(self) -> float:
        _emit(
            {
                "event": "proposer_start",
                "node": self.node,
                "layer": self.layer,
                "index": self.index,
                "model": self.label,
            }
        )
        return time.perf_counter()

    def invoke(self, state: MoAState, config: RunnableConfig) -> dict[str, Any]:
        messages, kwargs = self._prompt(state), self.settings.call_kwargs()

        def call() -> BaseMessage:
            # The slot is held by whoever runs the call: a call given up on keeps it until it ends.
            with self.settings.limit.sync_slot():
                return self.model.invoke(messages, config, **kwargs)

        with self._race() as race:
            started = self._started()
            try:
                answer = race.run(call) if race.rules.active else call()
            except Exception as error:  # any failure drops this proposal; it is recorded
                return self._record(race, started, None, error)
            return self._record(race, started, answer, None)

    async def ainvoke(self, state: MoAState, config: RunnableConfig) -> dict[str, Any]:
        messages, kwargs = self._prompt(state), self.settings.call_kwargs()
        with self._race() as race:
            async with self.settings.limit.async_slot():
                started = self._started()
                call = self.model.ainvoke(messages, config, **kwargs)
                try:
                    answer = await (race.arun(call) if race.rules.active else call)
                except Exception as error:  # any failure drops this proposal; it is recorded
                    return self._record(race, started, None, error)
                return self._record(race, started, answer, None)

    def _race(self) -> contextlib.AbstractContextManager[LayerRace]:
        # Proposers of one layer in one run share a superstep, hence its checkpoint id.
        superstep = get_runtime().execution_info
        if superstep is None or superstep.checkpoint_id is None:
            msg = "LangGraph gave no checkpoint id to a proposer node (needed to share its layer's race)"
            raise RuntimeError(msg)
        return self.settings.races.join(superstep.checkpoint_id, self.layer, self.layer_size)


def _references(state: MoAState, nodes: Sequence[str]) -> list[str]:
    """The answers of ``nodes`` that succeeded, in proposer order."""
    proposals = state.get("proposals") or {}
    return [p["content"] for n in nodes if (p := proposals.get(n)) and p["content"] is not None]


class _LayerJoin:
    """Waits for a whole layer and checks that enough of it answered."""

    def __init__(self, layer: int, nodes: Sequence[str], min_proposals: int) -> None:
        self.layer = layer
        self.nodes = list(nodes)
        self.min_proposals = min_proposals

    def __call__(self, state: MoAState) -> dict[str, Any]:
        proposals = [state["proposals"][n] for n in self.nodes]
        answered = [p for p in proposals if p["error"] is None]
        if len(answered) < self.min_proposals:
            failures = "; ".join(
                f"proposer {p['index']} ({p['model']}): {p['error']}" for p in proposals if p["error"]
            )
            msg = (
                f"layer {self.layer} kept {len(answered)} of {len(proposals)} proposals, fewer than "
                f"min_proposals={self.min_proposals}. Failed: {failures}"
            )
            raise MoAError(msg)
        return {}


class _AggregatorNode:
    """Synthesises the last layer's answers into the reply, streaming its tokens."""

    def __init__(
        self,
        model: BaseChatModel,
        *,
        references_from: Sequence[str],
        layer_nodes: Sequence[Sequence[str]],
        settings: _Settings,
    ) -> None:
        self.model = model
        self.label = model_label(model)
        self.references_from = list(references_from)
        self.layer_nodes = [list(nodes) for nodes in layer_nodes]
        self.settings = settings

    def runnable(self) -> RunnableCallable:
        return RunnableCallable(self.invoke, self.ainvoke, name=AGGREGATOR_NODE)

    def _call(self, state: MoAState) -> tuple[ChatRunnable, list[BaseMessage], dict[str, Any]]:
        references = _references(state, self.references_from)
        messages = inject_references(state["messages"], self.settings.prompt, references)
        kwargs = {**_run_context().aggregator_kwargs, **self.settings.call_kwargs()}
        model: ChatRunnable = self.model
        if "tools" in kwargs:
            tools, tool_choice = kwargs.pop("tools"), kwargs.pop("tool_choice", None)
            bind_kwargs = {k: kwargs.pop(k) for k in ("parallel_tool_calls", "strict") if k in kwargs}
            model = self.model.bind_tools(tools, tool_choice=tool_choice, **bind_kwargs)
        _emit({"event": "aggregator_start", "model": self._label(kwargs), "references": len(references)})
        return model, messages, kwargs

    def _label(self, kwargs: Mapping[str, Any]) -> str:
        # A call-time ``model=`` override (LangChain's convention) names the aggregator's model.
        override = kwargs.get("model")
        return override if isinstance(override, str) else self.label

    def invoke(self, state: MoAState, config: RunnableConfig) -> dict[str, Any]:
        model, messages, kwargs = self._call(state)
        started, chunks = time.perf_counter(), list[AIMessageChunk]()
        try:
            with self.settings.limit.sync_slot():
                stream = model.stream(messages, config, **kwargs)
                for chunk in _within(stream, self.settings.aggregator_timeout):
                    chunks.append(_forward(chunk))
        except Exception as error:
            raise self._failed(kwargs, error) from error
        return self._answer(state, chunks, started, self._label(kwargs))

    async def ainvoke(self, state: MoAState, config: RunnableConfig) -> dict[str, Any]:
        model, messages, kwargs = self._call(state)
        started, chunks = time.perf_counter(), list[AIMessageChunk]()
        deadline = asyncio.timeout(self.settings.aggregator_timeout)
        try:
            async with self.settings.limit.async_slot(), deadline:
                async for chunk in model.astream(messages, config, **kwargs):
                    chunks.append(_forward(chunk))
        except TimeoutError as error:
            if not deadline.expired():  # the model's own timeout, not ours
                raise self._failed(kwargs, error) from error
            timeout = TimeoutError(
                f"no answer within {self.settings.aggregator_timeout}s (aggregator_timeout)"
            )
            raise self._failed(kwargs, timeout) from error
        except Exception as error:
            raise self._failed(kwargs, error) from error
        return self._answer(state, chunks, started, self._label(kwargs))

    def _failed(self, kwargs: Mapping[str, Any], error: Exception) -> AggregatorError:
        return AggregatorError(f"aggregator ({self._label(kwargs)}) failed: {_error_text(error)}")

    def _answer(
        self, state: MoAState, chunks: list[AIMessageChunk], started: float, label: str
    ) -> dict[str, Any]:
        if not chunks:
            raise AggregatorError(f"aggregator ({label}) returned nothing")
        answer = add_ai_message_chunks(*chunks) if len(chunks) > 1 else chunks[0]  # one merge, at the end
        message = message_chunk_to_message(answer)
        proposals = state.get("proposals") or {}
        layers = [[proposals[n] for n in nodes] for nodes in self.layer_nodes]
        reported = [p["usage"] for layer in layers for p in layer if p["usage"]] + [answer.usage_metadata]
        usage = functools.reduce(add_usage, [u for u in reported if u]) if any(reported) else None
        moa = {
            "layers": layers,
            "aggregator": {
                "model": label,
                "usage": answer.usage_metadata,
                "latency_s": round(time.perf_counter() - started, 4),
            },
        }
        final = AIMessage(
            content=message.content,
            tool_calls=getattr(message, "tool_calls", []),
            invalid_tool_calls=getattr(message, "invalid_tool_calls", []),
            usage_metadata=usage,
            response_metadata={
                "model_name": f"moa/{label}",
                "model_provider": "moa",
                # Whether the answer ran out of tokens is the aggregator's to say.
                **{
                    k: v for k, v in answer.response_metadata.items() if k in ("finish_reason", "stop_reason")
                },
                "moa": moa,
            },
        )
        return {"messages": [final]}


_END = object()


def _within(stream: Iterator[BaseMessage], timeout: float | None) -> Iterator[BaseMessage]:
    """``stream``, failing with ``TimeoutError`` when it is not finished within ``timeout`` seconds.

    The stream is read in a worker thread (a blocked sync read cannot be interrupted; past the
    timeout it is abandoned there).
    """
    if timeout is None:
        yield from stream
        return
    items: queue.Queue[Any] = queue.Queue()
    given_up = threading.Event()

    def pump() -> None:
        try:
            for item in stream:
                if given_up.is_set():  # the reader has gone: stop reading, and close the stream
                    break
                items.put(item)
        except BaseException as error:  # handed over to the reader
            items.put(error)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
            items.put(_END)

    threading.Thread(target=copy_context().run, args=(pump,), daemon=True, name="moa-aggregator").start()
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                item = items.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no answer within {timeout}s (aggregator_timeout)") from None
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        given_up.set()


def _forward(chunk: BaseMessage) -> AIMessageChunk:
    """Send a streamed chunk to custom-stream listeners."""
    chunk = as_chunk(chunk)  # a model without streaming yields one whole AIMessage
    _emit({"event": "token", "chunk": chunk})
    return chunk


def proposer_node_name(layer: int, index: int, model: BaseChatModel) -> str:
    """Readable, unique node name, e.g. ``"layer 1 #2 Qwen2.5-72B-Instruct-Turbo"``.

    LangGraph reserves ``:`` and ``|`` in node names (``llama3.1:8b`` becomes ``llama3.1-8b``).
    """
    label = model_label(model).rsplit("/", 1)[-1].replace(":", "-").replace("|", "-")
    return f"layer {layer} #{index} {label}"


def _check(
    proposers: Sequence[Any],
    layers: int,
    min_proposals: int,
    timeouts: Mapping[str, float | None],
    limit: int | None,
    retries: int | None,
) -> None:
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
        msg = (
            "layers must be an integer >= 1 (1 = the aggregator alone, 2 = one proposer layer), "
            f"got {layers!r}"
        )
        raise MoAConfigError(msg)
    if layers > 1 and not proposers:
        msg = (
            "proposers is empty: give at least one model, e.g. proposers=['openai:gpt-4o-mini'] (or layers=1)"
        )
        raise MoAConfigError(msg)
    if min_proposals < 1 or (layers > 1 and min_proposals > len(proposers)):
        msg = (
            f"min_proposals must be between 1 and the number of proposers ({len(proposers)}), "
            f"got {min_proposals!r}"
        )
        raise MoAConfigError(msg)
    for name, seconds in timeouts.items():
        if seconds is not None and seconds <= 0:
            msg = f"{name} must be a positive number of seconds or None, got {seconds!r}"
            raise MoAConfigError(msg)
    if retries is not None and retries < 0:
        msg = f"max_retries must be >= 0 or None (each model's own retries), got {retries!r}"
        raise MoAConfigError(msg)
    if limit is not None and limit < 1:
        msg = f"max_concurrency must be >= 1 or None (no bound), got {limit!r}"
        raise MoAConfigError(msg)


def _check_race(n: int, min_proposals: int, quorum: int | None, deadline: float | None) -> None:
    if quorum is not None and not min_proposals <= quorum <= n:
        msg = (
            f"proposal_quorum must be between min_proposals ({min_proposals}) and the number of "
            f"proposers ({n}), got {quorum!r}"
        )
        raise MoAConfigError(msg)
    if deadline is not None and deadline <= 0:
        msg = f"layer_deadline must be a positive number of seconds or None, got {deadline!r}"
        raise MoAConfigError(msg)


def check_config(
    proposers: Sequence[Any],
    *,
    layers: int = 2,
    min_proposals: int = 1,
    proposal_quorum: int | None = None,
    layer_deadline: float | None = None,
    proposer_timeout: float | None = None,
    aggregator_timeout: float | None = None,
    max_concurrency: int | None = None,
    max_retries: int | None = None,
    **_: Any,
) -> None:
    """The checks ``build_moa_graph`` makes before it creates any model (same arguments).

    Raises:
        MoAConfigError: naming the invalid value and what is valid.
    """
    timeouts = {"proposer_timeout": proposer_timeout, "aggregator_timeout": aggregator_timeout}
    _check(proposers, layers, min_proposals, timeouts, max_concurrency, max_retries)
    _check_race(len(proposers), min_proposals, proposal_quorum, layer_deadline)


def build_moa_graph(
    proposers: Sequence[BaseChatModel | str],
    aggregator: BaseChatModel | str,
    *,
    layers: int = 2,
    aggregator_prompt: str = AGGREGATOR_PROMPT,
    temperature: float | None = None,
    max_tokens: int | None = None,
    proposer_timeout: float | None = None,
    aggregator_timeout: float | None = None,
    min_proposals: int = 1,
    proposal_quorum: int | None = None,
    layer_deadline: float | None = None,
    max_concurrency: int | None = None,
    max_retries: int | None = None,
    api_key: SecretStr | None = None,
    checkpointer: Checkpointer | Literal[False] = None,
    name: str = "moa",
) -> MoAGraph:
    """Build the Mixture-of-Agents graph.

    Args:
        proposers: chat models or ``"provider:model"`` strings; each proposer layer runs them all.
        aggregator: the model that synthesises the last layer's answers.
        layers: counted as the paper does: 3 = two proposer layers and the aggregator; 1 = the
            aggregator alone.
        aggregator_prompt: the aggregate-and-synthesize prompt; the paper's by default.
        temperature: sampling temperature of every call (``None``: each model's own).
        max_tokens: token limit of every answer (``None``: each model's own).
        proposer_timeout: seconds a proposer may take before it is dropped.
        aggregator_timeout: seconds the aggregator's answer may take (then ``AggregatorError``).
        min_proposals: answers each layer must keep, or the run raises ``MoAError``.
        proposal_quorum: aggregate as soon as this many of a layer's proposers have answered,
            cancelling the rest (``None``: wait for all).
        layer_deadline: seconds after which a layer goes on with what has arrived, cancelling the
            rest, provided ``min_proposals`` answers are in (``None``: no deadline).
        max_concurrency: bound on simultaneous model calls across every run of this graph.
        max_retries: retries of each failing proposer call (``None``: each model's own client
            retries). The aggregator streams, and a stream is not replayed.
        api_key: Together key for bare model names (default: ``TOGETHER_API_KEY``).
        checkpointer: passed to ``compile``; ``False`` when the graph runs inside another graph's node.
        name: the compiled graph's name.

    Example:
        >>> from langchain_moa.fakes import ScriptedChatModel
        >>> graph = build_moa_graph([ScriptedChatModel(answer="4")] * 2, ScriptedChatModel(answer="Four."))
        >>> graph.invoke({"messages": [("user", "2+2?")]})["messages"][-1].content
        'Four.'
    """
    check_config(
        proposers,
        layers=layers,
        min_proposals=min_proposals,
        proposal_quorum=proposal_quorum,
        layer_deadline=layer_deadline,
        proposer_timeout=proposer_timeout,
        aggregator_timeout=aggregator_timeout,
        max_concurrency=max_concurrency,
        max_retries=max_retries,
    )
    proposer_models = [resolve_chat_model(p, api_key=api_key) for p in proposers] if layers > 1 else []
    aggregator_model = resolve_chat_model(aggregator, api_key=api_key)
    settings = _Settings(
        prompt=aggregator_prompt,
        temperature=temperature,
        max_tokens=max_tokens,
        max_retries=max_retries,
        aggregator_timeout=aggregator_timeout,
        limit=CallLimit(max_concurrency),
        races=RaceTrack(
            RaceRules(
                quorum=proposal_quorum,
                deadline=layer_deadline,
                min_proposals=min_proposals,
                timeout=proposer_timeout,
            )
        ),
    )

    graph = StateGraph(MoAState, context_schema=MoAContext, input_schema=MessagesState)
    previous_join, previous_layer = START, list[str]()
    layer_nodes: list[list[str]] = []
    for layer in range(1, layers):
        names = [proposer_node_name(layer, i, m) for i, m in enumerate(proposer_models, start=1)]
        for index, (node, model) in enumerate(zip(names, proposer_models, strict=True), start=1):
            proposer = _ProposerNode(
                node,
                model,
                layer=layer,
                index=index,
                layer_size=len(names),
                references_from=previous_layer,
                settings=settings,
            )
            graph.add_node(node, proposer.runnable())
            graph.add_edge(previous_join, node)
        join = f"layer {layer} done"
        graph.add_node(join, _LayerJoin(layer, names, min_proposals))
        graph.add_edge(names, join)
        previous_join, previous_layer = join, names
        layer_nodes.append(names)

    aggregate = _AggregatorNode(
        aggregator_model, references_from=previous_layer, layer_nodes=layer_nodes, settings=settings
    )
    graph.add_node(AGGREGATOR_NODE, aggregate.runnable())
    graph.add_edge(previous_join, AGGREGATOR_NODE)
    graph.add_edge(AGGREGATOR_NODE, END)
    return graph.compile(checkpointer=checkpointer, name=name)
