"""``MoAChatModel``: Mixture-of-Agents as a LangChain chat model."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Self

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig, ensure_config
from langchain_core.utils import secret_from_env
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.utils import LC_ID_PREFIX
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from langchain_moa import events, sync_bridge
from langchain_moa.conversation import as_chunk, check_conversation, check_inputs
from langchain_moa.costs import Pricer, check_budget
from langchain_moa.graph import MoAGraph, build_moa_graph, resolve_models, run_config
from langchain_moa.options import MoAOptions, option_names
from langchain_moa.state import MoAContext
from langchain_moa.streaming import ContentBlocks, RunTokens, last_chunk, run_token, while_running
from langchain_moa.tracing import child_callbacks, inner_context, ls_params

__all__ = ["MoAChatModel"]


class MoAChatModel(MoAOptions, BaseChatModel):
    """Mixture-of-Agents (Wang et al. 2024) as a LangChain chat model.

    Each proposer layer asks every proposer in parallel; from the second layer on, proposers also
    see the previous layer's answers; the aggregator synthesises the last layer's answers into the
    reply with the paper's aggregate-and-synthesize prompt. Backed by a LangGraph graph
    (``.graph``), it streams the aggregator's tokens, sums the usage of every call, and records
    every proposal in ``response_metadata["moa"]``. Its fields are the ``MoAOptions``, plus ``stop``
    and ``api_key``.

    Examples:
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

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True, extra="forbid")

    stop: list[str] | None = None
    """Stop sequences for the aggregator's answer (proposers answer in full)."""
    streaming: bool = True
    """LangChain's standard flag: set to ``False``, ``stream()`` gives the whole answer as one chunk (as
    with ``disable_streaming``); callbacks still hear the aggregator's tokens."""
    api_key: SecretStr | None = Field(
        default_factory=secret_from_env("TOGETHER_API_KEY", default=None), alias="together_api_key"
    )
    """Together API key for model strings without a provider; defaults to ``TOGETHER_API_KEY``."""

    _graph: MoAGraph = PrivateAttr()
    _graph_key: tuple[Any, ...] = PrivateAttr(default=())
    _rng: tuple[int | None, random.Random] | None = PrivateAttr(default=None)
    """``shuffle``'s random orders and the seed they come from (a copy with another seed makes its own)."""
    _models: list[BaseChatModel] = PrivateAttr(default_factory=list)
    _answer_key: tuple[Any, dict[str, Any]] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _build_graph(self) -> Self:
        # Built here, so that a bad model or key fails at construction, before any model is called.
        self._current_graph()
        return self

    def _current_graph(self) -> MoAGraph:
        """The graph of the current field values, rebuilt when a field was changed since."""
        values = {name: getattr(self, name) for name in option_names()}
        key = (  # the seed aside: it reaches the graph in each run's context (``_orders``)
            *(
                tuple(map(_by_id, v)) if k == "proposers" else _by_id(v)
                for k, v in values.items()
                if k != "seed"
            ),
            hash(self.api_key.get_secret_value()) if self.api_key else None,  # never the key itself
        )
        if key != self._graph_key:
            options = MoAOptions(**values)  # a field set after construction is checked like the rest
            self._rng = (options.seed, random.Random(options.seed))
            options = options.model_copy(update={"seed": None})
            proposers, aggregator = resolve_models(options, api_key=self.api_key)
            resolved = options.model_copy(
                update={"proposers": proposers or options.proposers, "aggregator": aggregator}
            )
            # The graph runs inside this model's call: it must not write into a caller's checkpoints.
            self._graph = build_moa_graph(options=resolved, checkpointer=False)
            self._models = [*proposers, aggregator]
            self._graph_key = key
        self._orders()  # a seed set since is checked too
        return self._graph

    def _orders(self) -> random.Random:
        """The random orders of ``aggregation="shuffle"``: one sequence per model, from its ``seed``."""
        if self._rng is None or self._rng[0] != self.seed:  # a copy with another seed (a server's variant)
            MoAOptions(**{name: getattr(self, name) for name in option_names()})  # the seed checked
            self._rng = (self.seed, random.Random(self.seed))
        return self._rng[1]

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> MoAChatModel:
        """A model configured by a named preset (see ``langchain_moa.presets``).

        Examples:
            >>> moa = MoAChatModel.from_preset("local", max_tokens=128)  # doctest: +SKIP
        """
        from langchain_moa.presets import preset_fields

        return cls(**preset_fields(name, **overrides))

    @classmethod
    def from_config(cls, path: str | Path, **overrides: Any) -> MoAChatModel:
        """A model described by a TOML file: each model on its own endpoint, and every option (see
        ``langchain_moa.config_file``); ``overrides`` are any fields over it.

        Examples:
            >>> moa = MoAChatModel.from_config("moa.toml", staircase=16)  # doctest: +SKIP
        """
        from langchain_moa.config_file import load_config

        return cls(**{**load_config(path), **overrides})

    @property
    def graph(self) -> MoAGraph:
        """The compiled LangGraph graph behind this model (draw it with ``.get_graph()``)."""
        return self._current_graph()

    @property
    def aggregator_model(self) -> BaseChatModel:
        """The aggregator as a chat model (a model string resolved)."""
        self._current_graph()
        return self._models[-1]

    @property
    def _llm_type(self) -> str:
        return "moa"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        # The cache key, made once per configuration and seed (core reads it on every call).
        self._current_graph()
        if self._answer_key is None or self._answer_key[0] != (self._graph_key, self.seed):
            self._answer_key = ((self._graph_key, self.seed), self.answer_key())
        return {**self._answer_key[1], "stop": self.stop}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return ls_params(self, stop or self.stop, kwargs)

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

    # -- the one core: every call runs the graph here ------------------------------------------

    async def _arun(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
        on_token: Callable[[AIMessageChunk], None] | None = None,
    ) -> ChatResult:
        """Run the MoA graph: its events go to the observers, its tokens to the run and ``on_token``."""
        check_conversation(messages)
        graph = self._current_graph()
        check_inputs(messages, self._models)
        if self.max_cost is not None:  # the worst case, before any model runs
            options = MoAOptions(**{name: getattr(self, name) for name in option_names()})
            limited = options.model_copy(update={k: kwargs[k] for k in ("max_tokens",) if kwargs.get(k)})
            check_budget(limited, self._models[:-1], self._models[-1], messages, Pricer(self.prices))
        stop = stop or self.stop
        aggregator_kwargs = {**kwargs, "stop": stop} if stop else dict(kwargs)
        context = MoAContext(
            temperature=aggregator_kwargs.pop("temperature", None),
            max_tokens=aggregator_kwargs.pop("max_tokens", None),
            rng=self._orders(),  # after ``_current_graph``: checked
            proposal_text=events.watching_proposal_text(),
            aggregator_kwargs=aggregator_kwargs,
        )
        config = run_config(self.layers, callbacks=child_callbacks(run_manager))
        # Copies: the graph gives messages ids, and the caller's messages must stay as they were.
        state = {"messages": [m.model_copy() for m in messages]}
        message_id = f"{LC_ID_PREFIX}-{run_manager.run_id}" if run_manager else None  # core's ids
        v1 = ContentBlocks() if self.output_version == "v1" else None  # core's content blocks
        observers = events.observers()
        answer: AIMessage | None = None
        with inner_context():
            run = graph.astream(state, config, context=context, stream_mode="custom")  # type: ignore[call-overload]
            try:
                async for event in run:
                    for observer in observers:
                        observer(event)
                    if isinstance(event, events.Token) and (token := run_token(event.chunk, message_id, v1)):
                        if run_manager is not None:
                            reported = run_manager.on_llm_new_token(token.text, chunk=token)
                            if inspect.isawaitable(reported):
                                await reported
                        if on_token is not None:
                            on_token(as_chunk(token.message))
                    elif isinstance(event, events.Answer):
                        answer = event.message
            finally:  # a cancelled call stops its graph run at once
                await run.aclose()
        if answer is None:  # the graph always ends in the aggregator; this would be a bug
            msg = "the MoA graph finished without an answer"
            raise RuntimeError(msg)
        if message_id is not None:  # the id of the streamed tokens: a stream shows the answer once
            answer = answer.model_copy(update={"id": message_id})
        return ChatResult(generations=[ChatGeneration(message=answer)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return sync_bridge.run(self._arun(messages, stop, run_manager, kwargs))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await self._arun(messages, stop, run_manager, kwargs)

    # -- streaming: the same call, its tokens read as they are reported -----------------------

    def _should_stream(self, *, async_api: bool, **kwargs: Any) -> bool:
        # invoke() reports tokens from _generate, which has the run manager child runs nest under.
        return False

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        # LangChain's event-protocol streaming (stream_events v3) calls this with the run manager.
        chunks: asyncio.Queue[Any] = asyncio.Queue()
        call = asyncio.ensure_future(self._arun(messages, stop, run_manager, kwargs, chunks.put_nowait))
        streamed = False
        async with contextlib.aclosing(while_running(call, chunks)) as tokens:
            async for token in tokens:
                streamed = True
                yield ChatGenerationChunk(message=token)
        yield ChatGenerationChunk(message=last_chunk(call.result().generations[0].message, streamed))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        yield from sync_bridge.iterate(self._astream(messages, stop, run_manager, **kwargs))  # type: ignore[arg-type]

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        """Stream the aggregator's tokens; the last chunk carries the usage and the MoA metadata.

        It is ``ainvoke`` with its tokens read as they are reported, so it is traced, cached and
        rate-limited the same way. Leaving the loop early cancels every model call at once.
        """
        if not self._streams(kwargs):  # core's opt-outs: the whole answer, one chunk
            answer = await self.ainvoke(input, config, stop=stop, **kwargs)
            yield last_chunk(answer, streamed=False)
            return
        config = ensure_config(config)
        run_id = config.get("run_id") or uuid.uuid4()
        tokens = RunTokens(run_id)
        callbacks = AsyncCallbackManager.configure(config.get("callbacks"))
        callbacks.add_handler(tokens, inherit=False)
        call = asyncio.ensure_future(
            self.ainvoke(input, {**config, "callbacks": callbacks, "run_id": run_id}, stop=stop, **kwargs)
        )
        streamed = False
        async with contextlib.aclosing(while_running(call, tokens.chunks)) as chunks:
            async for chunk in chunks:
                streamed = True
                yield chunk
        yield last_chunk(call.result(), streamed)

    def _streams(self, kwargs: dict[str, Any]) -> bool:
        """Whether ``stream`` yields the tokens as they are written: not under core's opt-outs
        (``disable_streaming``, ``"tool_calling"`` with tools bound, ``streaming=False`` set)."""
        tools = bool(kwargs.get("tools"))
        if self.disable_streaming is True or (self.disable_streaming == "tool_calling" and tools):
            return False
        return self.streaming or "streaming" not in self.model_fields_set

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        """``astream``, driven from sync code (see ``langchain_moa.sync_bridge``)."""
        yield from sync_bridge.iterate(self.astream(input, config, stop=stop, **kwargs))


def _by_id(value: Any) -> object:
    return id(value) if isinstance(value, BaseChatModel) else value
