"""Scripted chat models: test doubles for MoA graphs, examples and benchmarks (no network).

``ScriptedChatModel`` answers from a script, records every call it receives (so a test can assert
the exact prompt), can sleep (to prove parallelism), fail, stream word by word, report token usage
and call tools.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr, SkipValidation

from langchain_moa.conversation import as_chunk

__all__ = ["Reply", "ScriptedCall", "ScriptedChatModel"]

Reply = str | AIMessage | BaseException
"""What a script gives for one call: text, a whole message (e.g. with tool calls), or an error."""


class ScriptedCall(dict[str, Any]):
    """One recorded call: ``{"messages": [...], "kwargs": {...}}``."""


def _count_tokens(text: str) -> int:
    return len(text.split())


class ScriptedChatModel(BaseChatModel):
    """A chat model that answers from a script.

    Example:
        >>> model = ScriptedChatModel(answers=["Paris.", "Rome."])
        >>> model.invoke("Capital of France?").content
        'Paris.'
        >>> model.invoke("Capital of Italy?").content
        'Rome.'
        >>> model.calls[0]["messages"][0].content
        'Capital of France?'
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    answer: SkipValidation[Reply | None] = None
    """The reply to every call (used when ``answers`` and ``respond`` are not set)."""
    answers: SkipValidation[Sequence[Reply]] = ()
    """Successive replies, one per call, cycling when exhausted."""
    respond: Callable[[list[BaseMessage], dict[str, Any]], Reply] | None = None
    """A function of (messages, call kwargs) giving the reply; overrides the other two."""
    model_name: str = "scripted"
    """Name reported in ``response_metadata`` and used as the model's label."""
    sleep: float = 0.0
    """Seconds to wait before answering (async calls use ``asyncio.sleep``)."""
    token_delay: float = 0.0
    """Seconds between streamed words."""
    report_usage: bool = True
    """Report ``usage_metadata`` (one token per whitespace-separated word)."""
    calls: list[ScriptedCall] = Field(default_factory=list, exclude=True, repr=False)
    """Every call received, in order."""

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def bind_tools(
        self, tools: Sequence[Any], *, tool_choice: str | dict | None = None, **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    # -- the script -------------------------------------------------------------------------

    def _reply(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
        with self._lock:
            number = len(self.calls)
            self.calls.append(ScriptedCall(messages=list(messages), kwargs=dict(kwargs)))
        if self.respond is not None:
            reply = self.respond(list(messages), kwargs)
        elif self.answers:
            reply = self.answers[number % len(self.answers)]
        elif self.answer is not None:
            reply = self.answer
        else:
            reply = messages[-1].text if messages else ""
        if isinstance(reply, BaseException):
            raise reply
        message = AIMessage(content=reply) if isinstance(reply, str) else reply.model_copy()
        if self.report_usage and message.usage_metadata is None:
            prompt = " ".join(m.text for m in messages)
            message.usage_metadata = UsageMetadata(
                input_tokens=_count_tokens(prompt),
                output_tokens=_count_tokens(message.text),
                total_tokens=_count_tokens(prompt) + _count_tokens(message.text),
            )
        message.response_metadata = {**message.response_metadata, "model_name": self.model_name}
        return message

    # -- LangChain entry points -------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        time.sleep(self.sleep)
        return ChatResult(
            generations=[ChatGeneration(message=self._reply(messages, _with_stop(stop, kwargs)))]
        )

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        await asyncio.sleep(self.sleep)
        return ChatResult(
            generations=[ChatGeneration(message=self._reply(messages, _with_stop(stop, kwargs)))]
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        time.sleep(self.sleep)
        for i, chunk in enumerate(_chunks(self._reply(messages, _with_stop(stop, kwargs)))):
            if i and self.token_delay:
                time.sleep(self.token_delay)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        await asyncio.sleep(self.sleep)
        for i, chunk in enumerate(_chunks(self._reply(messages, _with_stop(stop, kwargs)))):
            if i and self.token_delay:
                await asyncio.sleep(self.token_delay)
            yield chunk


def _with_stop(stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    return {**kwargs, "stop": stop} if stop else kwargs


def _chunks(message: AIMessage) -> list[ChatGenerationChunk]:
    """The message as a word-by-word stream; tool calls and usage ride on the last chunk."""
    words = message.text.split(" ") if message.text else []
    chunks = [AIMessageChunk(content=w if i == 0 else " " + w) for i, w in enumerate(words)]
    last = as_chunk(message.model_copy(update={"content": ""}))
    last.chunk_position = "last"
    return [ChatGenerationChunk(message=m) for m in [*chunks, last]]
