"""Scripted chat models: test doubles for MoA graphs, examples and benchmarks (no network).

``ScriptedChatModel`` answers from a script, records every call it receives (so a test can assert
the exact prompt), can sleep (to prove parallelism), fail, hang, break a stream half-way, stream
word by word, report token usage (a word is a token), stop at ``max_tokens`` and call tools; a
``CallTally`` counts its calls in progress (and
their peak) and how they ended (finished or cancelled).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, InstanceOf, PrivateAttr, SkipValidation

from langchain_moa.conversation import as_chunk

__all__ = ["BrokenStream", "CallTally", "Delayed", "Reply", "ScriptedCall", "ScriptedChatModel"]


@dataclass(frozen=True)
class Delayed:
    """A reply given only after ``seconds`` more (a slow provider; a very long delay is a hang)."""

    seconds: float
    reply: Reply


@dataclass(frozen=True)
class BrokenStream:
    """A reply whose stream breaks with ``error`` after ``words`` words (``invoke`` raises it)."""

    text: str
    words: int
    error: BaseException


Reply = str | AIMessage | BaseException | Delayed | BrokenStream
"""What a script gives for one call: text, a whole message (e.g. with tool calls), an error, a
delayed reply, or a stream that breaks."""


@dataclass
class CallTally:
    """Counts the calls of the scripted models that share it (thread-safe)."""

    running: int = 0
    """Calls in progress now."""
    peak: int = 0
    """The most calls ever in progress at once."""
    finished: int = 0
    """Calls that returned or raised."""
    cancelled: int = 0
    """Calls cancelled (or, streaming, closed) before they finished."""
    _lock: Any = field(default_factory=threading.Lock, repr=False, compare=False)

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            yield
        except (asyncio.CancelledError, GeneratorExit):
            with self._lock:
                self.cancelled += 1
            raise
        except BaseException:
            with self._lock:
                self.finished += 1
            raise
        else:
            with self._lock:
                self.finished += 1
        finally:
            with self._lock:
                self.running -= 1


class ScriptedCall(dict[str, Any]):
    """One recorded call: ``{"messages": [...], "kwargs": {...}}``."""


def _count_tokens(text: str) -> int:
    return len(text.split())


class ScriptedChatModel(BaseChatModel):
    """A chat model that answers from a script.

    Examples:
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
    tally: InstanceOf[CallTally] = Field(default_factory=CallTally, exclude=True, repr=False)
    """Counters of this model's calls; give several models one tally to count them together."""
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

    def _reply(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> _Plan:
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
        delay, breaks = self.sleep, None
        while isinstance(reply, Delayed):
            delay, reply = delay + reply.seconds, reply.reply
        if isinstance(reply, BrokenStream):
            breaks, reply = reply, reply.text
        if isinstance(reply, BaseException):
            return _Plan(delay, None, reply)
        message = AIMessage(content=reply) if isinstance(reply, str) else reply.model_copy()
        limit = kwargs.get("max_tokens")
        if (
            isinstance(limit, int)
            and isinstance(message.content, str)
            and _count_tokens(message.text) > limit
        ):
            # As a provider does: the answer stops at its token limit, and says so.
            text = message.text.lstrip(" ")  # a continuation's leading space is not a token
            lead = message.text[: len(message.text) - len(text)]
            message.content = lead + " ".join(text.split(" ")[:limit])
            message.response_metadata = {**message.response_metadata, "finish_reason": "length"}
        if self.report_usage and message.usage_metadata is None:
            prompt = " ".join(m.text for m in messages)
            message.usage_metadata = UsageMetadata(
                input_tokens=_count_tokens(prompt),
                output_tokens=_count_tokens(message.text),
                total_tokens=_count_tokens(prompt) + _count_tokens(message.text),
            )
        message.response_metadata = {**message.response_metadata, "model_name": self.model_name}
        return _Plan(delay, message, None, breaks)

    # -- LangChain entry points -------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self.tally.call():
            plan = self._reply(messages, _with_stop(stop, kwargs))
            time.sleep(plan.delay)
            return ChatResult(generations=[ChatGeneration(message=plan.message_or_raise())])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self.tally.call():
            plan = self._reply(messages, _with_stop(stop, kwargs))
            await asyncio.sleep(plan.delay)
            return ChatResult(generations=[ChatGeneration(message=plan.message_or_raise())])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        with self.tally.call():
            plan = self._reply(messages, _with_stop(stop, kwargs))
            time.sleep(plan.delay)
            for i, chunk in enumerate(plan.chunks()):
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
        with self.tally.call():
            plan = self._reply(messages, _with_stop(stop, kwargs))
            await asyncio.sleep(plan.delay)
            for i, chunk in enumerate(plan.chunks()):
                if i and self.token_delay:
                    await asyncio.sleep(self.token_delay)
                yield chunk


@dataclass(frozen=True)
class _Plan:
    """How one call goes: wait ``delay``, then answer ``message`` or raise ``error``."""

    delay: float
    message: AIMessage | None
    error: BaseException | None
    breaks: BrokenStream | None = None

    def message_or_raise(self) -> AIMessage:
        if self.error is not None:
            raise self.error
        if self.breaks is not None:
            raise self.breaks.error
        assert self.message is not None
        return self.message

    def chunks(self) -> Iterator[ChatGenerationChunk]:
        """The message as a word-by-word stream; tool calls and usage ride on the last chunk."""
        if self.error is not None:
            raise self.error
        assert self.message is not None
        words = self.message.text.split(" ") if self.message.text else []
        for i, word in enumerate(words):
            if self.breaks is not None and i == self.breaks.words:
                raise self.breaks.error
            yield ChatGenerationChunk(message=AIMessageChunk(content=word if i == 0 else " " + word))
        last = as_chunk(self.message.model_copy(update={"content": ""}))
        last.chunk_position = "last"
        yield ChatGenerationChunk(message=last)


def _with_stop(stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    return {**kwargs, "stop": stop} if stop else kwargs
