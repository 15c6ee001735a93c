"""The aggregator's side of a staircase: the answer written in rounds while the proposals stream in,
and the same rounds replayed on finished proposals (``moa eval exact``)."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.runnables import Runnable, RunnableConfig

from langchain_moa.aggregation import Strategy
from langchain_moa.conversation import as_chunk
from langchain_moa.errors import too_few_proposals
from langchain_moa.events import AggregatorRound, AggregatorStarted, Token, emit
from langchain_moa.options import MoAOptions
from langchain_moa.prompts import inject_references
from langchain_moa.providers import CONTINUES_ASSISTANT_MESSAGE, can
from langchain_moa.staircase.streams import Staircase
from langchain_moa.state import Proposal
from langchain_moa.tail_latency import TailLatency, within

__all__ = [
    "CONTINUE_PROMPT",
    "FINISH_PROMPT",
    "GO_ON",
    "aggregate_in_rounds",
    "aggregate_while_streaming",
    "joined",
    "prefills",
    "replay",
]

CONTINUE_PROMPT = "The responses continue (each from where its text above stopped):"
"""Heads the references of every round after the first."""
GO_ON = "Continue your response from where it stopped, without repeating what you have written."
"""Closes a round's references while the proposals are still being written."""
FINISH_PROMPT = "The responses are complete. Finish your response, without repeating what you have written."
"""Closes the last round's references."""


def prefills(layout: str, model: Any) -> bool:
    """Whether ``staircase_layout=layout`` continues ``model``'s unfinished message (``"prefill"``);
    ``"auto"`` does for a model whose provider says it continues an assistant message (the embedded
    llama.cpp server's do)."""
    if layout != "auto":
        return layout == "prefill"
    return can(model, CONTINUES_ASSISTANT_MESSAGE)


def joined(written: str, text: str) -> str:
    """``text`` as it continues ``written``: a space before it where two words would otherwise touch
    (each round is a new assistant turn, which starts without one)."""
    if written and text and not written[-1].isspace() and text[0].isalnum():
        return " " + text
    return text


async def aggregate_while_streaming(
    model: Runnable[Any, BaseMessage],
    conversation: Sequence[BaseMessage],
    staircase: Staircase,
    *,
    options: MoAOptions,
    strategy: Strategy,
    rng: Any,
    policy: TailLatency,
    aggregator: Any,
    label: str,
    config: RunnableConfig,
    kwargs: dict[str, Any],
) -> tuple[list[AIMessageChunk], dict[str, Any]]:
    """The aggregator node's staircase: its answer's chunks and record, written in rounds while the
    last layer streams. ``model``: the aggregator as called (tools bound); ``aggregator``: its chat model,
    whose provider says whether it continues an assistant message (the layout)."""
    size = len(staircase.streams)
    order = strategy.order(size, rng)
    record: dict[str, Any] = {"strategy": strategy.name}
    if order != list(range(size)):
        record["order"] = [i + 1 for i in order]
    max_tokens = kwargs.pop("max_tokens", None)
    async with within(policy.aggregator_timeout, "aggregator_timeout"):
        chunks, rounds = await aggregate_in_rounds(
            model, conversation, staircase, prompt=options.aggregator_prompt, order=order,
            prefill=prefills(options.staircase_layout, aggregator), min_proposals=options.min_proposals,
            max_tokens=max_tokens, label=label, slot=policy.limit.slot, config=config, kwargs=kwargs,
        )  # fmt: skip
    return chunks, record | {"staircase": rounds}


async def aggregate_in_rounds(
    model: Runnable[Any, BaseMessage],
    conversation: Sequence[BaseMessage],
    staircase: Staircase,
    *,
    prompt: str,
    order: Sequence[int],
    prefill: bool,
    min_proposals: int,
    max_tokens: int | None,
    label: str,
    slot: Callable[[], AbstractAsyncContextManager[None]],
    config: RunnableConfig,
    kwargs: dict[str, Any],
) -> tuple[list[AIMessageChunk], dict[str, Any]]:
    """Write the answer in rounds while the proposals stream in (see the module's documentation).

    ``order``: the proposers (indices from 0) in the order the references list them; ``prefill``: the
    ``"prefill"`` layout, else ``"turns"``; ``slot``: held during each round's call
    (``max_concurrency``), not while waiting for the proposers. Returns the answer's chunks (only the
    last round's metadata kept: each round is a call of its own) and the record of the rounds.
    ``MoAError`` before any token when fewer than ``min_proposals`` proposers have written anything.
    """
    numbers: dict[int, int] = {}  # proposer -> its number in the references, fixed by round 1
    begun = False  # ``prefill``: the answer so far ends ``messages``
    messages: list[BaseMessage] = []
    chunks: list[AIMessageChunk] = []
    rounds: list[dict[str, Any]] = []
    written, last_text = "", ""
    began = time.perf_counter()
    while True:
        taken, took = await staircase.take()
        complete = staircase.complete
        if not numbers:
            writers = [i for i in order if taken[i].strip()]
            if len(writers) < min_proposals:
                msg = (
                    f"the last layer has {len(writers)} proposals with text, fewer than "
                    f"min_proposals={min_proposals}. Failed: {staircase.failures()}"
                )
                raise too_few_proposals(msg, staircase.errors())
            numbers = {i: n for n, i in enumerate(writers, start=1)}
            messages = inject_references(conversation, prompt, [taken[i] for i in writers])
            emit(AggregatorStarted(model=label, references=len(writers)))
        else:
            if prefill and begun:
                messages.pop()  # the answer so far, which goes last again below
            elif not prefill and last_text:
                messages.append(AIMessage(content=last_text))
            lines = "".join(f"\n{n}. {taken[i].lstrip(' ')}" for i, n in numbers.items() if taken[i])
            close = FINISH_PROMPT if complete else GO_ON
            messages.append(HumanMessage(content=f"{CONTINUE_PROMPT}{lines}\n\n{close}" if lines else close))
            begun = prefill and bool(written)
            if begun:
                messages.append(AIMessage(content=written))
        left = None if max_tokens is None else max_tokens - sum(1 for c in chunks if c.text)
        limit = left if complete else (staircase.chunk if left is None else min(staircase.chunk, left))
        emit(AggregatorRound(round=len(rounds) + 1, complete=complete))
        started = time.perf_counter() - began
        after = "" if prefill else written  # a continued message needs no space added
        async with slot():
            round_chunks = [c async for c in _one_round(model, messages, limit, after, config, kwargs)]
        last_text = "".join(c.text for c in round_chunks).lstrip(" ") if round_chunks else ""
        written += "".join(c.text for c in round_chunks)
        if not complete:  # each round is a call of its own: only the last one's metadata describes the end
            round_chunks = [c.model_copy(update={"response_metadata": {}}) for c in round_chunks]
        chunks.extend(round_chunks)
        rounds.append(
            {
                "round": len(rounds) + 1,
                "took_tokens": took,
                "complete": complete,
                "output_tokens": sum(1 for c in round_chunks if c.text),
                "started_s": round(started, 4),
            }
        )
        if complete or (left is not None and left - rounds[-1]["output_tokens"] <= 0):
            break
    layout = "prefill" if prefill else "turns"
    return chunks, {"chunk": staircase.chunk, "layout": layout, "rounds": rounds}


async def _one_round(
    model: Runnable[Any, BaseMessage],
    messages: list[BaseMessage],
    limit: int | None,
    written: str,
    config: RunnableConfig,
    kwargs: dict[str, Any],
) -> AsyncIterator[AIMessageChunk]:
    """One aggregator call of at most ``limit`` tokens (a provider that ignores ``max_tokens`` is cut)."""
    call_kwargs = dict(kwargs) if limit is None else {**kwargs, "max_tokens": limit}
    tokens = 0
    # Closed on leaving, not when garbage is collected: a call cut short stops its HTTP stream at once.
    async with contextlib.aclosing(model.astream(list(messages), config, **call_kwargs)) as stream:
        async for raw in stream:
            chunk = as_chunk(raw)
            if chunk.text:
                if limit is not None and tokens >= limit:
                    break
                if tokens == 0:
                    chunk = chunk.model_copy(update={"content": joined(written, chunk.text)})
                tokens += 1
                emit(Token(chunk=chunk))
            yield chunk


class _Replayed(Staircase):
    """Finished proposals fed as if they streamed in step with the aggregator: before each round,
    every proposal writes its next ``chunk`` words."""

    def __init__(self, texts: Sequence[str], chunk: int) -> None:
        super().__init__(len(texts), chunk)
        self._words = [re.findall(r"\s*\S+", text) for text in texts]
        self._fed = 0

    async def take(self) -> tuple[list[str], list[int]]:
        for index, words in enumerate(self._words, start=1):
            for word in words[self._fed : self._fed + self.chunk]:
                self.wrote(index, word)
            if self._fed + self.chunk >= len(words) and self.streams[index - 1].proposal is None:
                self.finished(Proposal(node="", layer=0, index=index, model="", content="".join(words),
                                       error=None, usage=None, latency_s=0.0, cut=False))  # fmt: skip
        self._fed += self.chunk
        return await super().take()


async def replay(
    model: Runnable[Any, BaseMessage],
    conversation: Sequence[BaseMessage],
    proposals: Sequence[str],
    *,
    chunk: int,
    prompt: str,
    layout: str = "auto",
    max_tokens: int | None = None,
    **kwargs: Any,
) -> tuple[str, dict[str, Any], list[AIMessageChunk]]:
    """Staircase aggregation of journalled, finished proposals, in chunks of ``chunk`` words cut from
    them in the order they would arrive (each round takes every proposal's next chunk, as when the
    proposers write as fast as the aggregator), in ``layout`` (``staircase_layout``): what
    ``moa eval exact --strategies staircase=N`` measures. Returns the answer, the record of the
    rounds and the answer's chunks (for its usage)."""
    chunks, record = await aggregate_in_rounds(
        model, conversation, _Replayed(proposals, chunk), prompt=prompt, order=range(len(proposals)),
        prefill=prefills(layout, model), min_proposals=1, max_tokens=max_tokens, label="replay",
        slot=contextlib.nullcontext, config={}, kwargs=kwargs,
    )  # fmt: skip
    return "".join(c.text for c in chunks), record, chunks
