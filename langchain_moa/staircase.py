"""Staircase aggregation (Wang et al. 2025, arXiv 2510.05059): the aggregator writes while the last
layer's proposers are still streaming.

With ``staircase=N``, the last layer's proposers stream their answers into a ``Staircase`` that the
aggregator shares (its node runs in the same superstep, beside them). The aggregator starts once every
proposer has written its first N tokens (or finished, or failed) and writes at most N tokens; then it
takes in what the proposers wrote meanwhile, waiting until each has written N more or finished, and
writes its next N tokens; and so on. Once the proposals are complete it writes the rest of its answer.
Tokens are counted as streamed chunks (one token each from OpenAI-compatible servers).

Round 1 is the paper's layout exactly, with the first chunks as the references. Each later round
appends the proposals' new text as a user message; the layouts (``staircase_layout``) differ in where
the aggregator's answer so far goes. ``"turns"``, which any chat API takes, appends each round's text
as an assistant turn before the next round's references: the prompt only ever grows at its end, so
llama.cpp's and vLLM's prefix caches reuse every earlier round, but each round is a new turn, and a
small model may begin its answer again::

    [system: the paper's prompt + "\\n1. {proposal 1's first chunk}\\n2. ..."] + the conversation
    + [assistant: the aggregator's round-1 text]
    + [user: "The responses continue:\\n1. {what proposal 1 wrote since}\\n2. ...\\n\\n" + how to go on]
    + [assistant: round-2 text] + ...

``"prefill"`` keeps the answer one assistant message, last, which the model continues (llama.cpp's
server does; OpenAI's chat API would start a new message); a prefix cache reuses everything before
the newest references, and processes those and the answer so far again::

    [system: the paper's prompt + "\\n1. {proposal 1's first chunk}\\n2. ..."] + the conversation
    + [user: "The responses continue:\\n1. ..."] + [user: the next round's new text] + ...
    + [assistant: the answer so far]

The answer is the rounds' texts joined (with ``"turns"``, a space where a round would otherwise glue
two words together). Every round and what it took in is recorded in
``response_metadata["moa"]["staircase"]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.runnables import Runnable, RunnableConfig

from langchain_moa.conversation import as_chunk
from langchain_moa.errors import too_few_proposals
from langchain_moa.events import AggregatorRound, AggregatorStarted, Token, emit
from langchain_moa.prompts import inject_references
from langchain_moa.state import Proposal

__all__ = [
    "CONTINUE_PROMPT",
    "FINISH_PROMPT",
    "Staircase",
    "aggregate_in_rounds",
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


@dataclass
class _Stream:
    """What one proposer has written so far, and how much of it the aggregator has taken in."""

    pieces: list[str] = field(default_factory=list)
    tokens: int = 0
    taken_tokens: int = 0
    taken_pieces: int = 0
    proposal: Proposal | None = None
    """Set when the proposer has finished (answered, failed or was cut)."""

    def new(self) -> str:
        return "".join(self.pieces[self.taken_pieces :])


class Staircase:
    """The streams of one layer's proposers in one run, read by the aggregator in rounds of ``chunk``
    tokens."""

    def __init__(self, size: int, chunk: int) -> None:
        self.chunk = chunk
        self.streams = [_Stream() for _ in range(size)]
        self.closed = False
        """Set when the aggregator needs no more text: the proposers still writing stop."""
        self._changed = asyncio.Event()

    # -- the proposers' side ------------------------------------------------------------------

    def wrote(self, index: int, text: str) -> None:
        """Proposer ``index`` (from 1) streamed one more token."""
        stream = self.streams[index - 1]
        stream.pieces.append(text)
        stream.tokens += 1
        if stream.tokens - stream.taken_tokens >= self.chunk:
            self._changed.set()

    def finished(self, proposal: Proposal) -> None:
        """A proposer finished: answered, failed or was cut."""
        self.streams[proposal["index"] - 1].proposal = proposal
        self._changed.set()

    # -- the aggregator's side ----------------------------------------------------------------

    @property
    def complete(self) -> bool:
        return all(s.proposal is not None for s in self.streams)

    def _ready(self) -> bool:
        return all(s.proposal is not None or s.tokens - s.taken_tokens >= self.chunk for s in self.streams)

    async def take(self) -> tuple[list[str], list[int]]:
        """Wait until every proposer has written ``chunk`` more tokens or finished, then take in what
        each has written since the last round (``""`` for nothing new) and how many tokens that is,
        in proposer order."""
        while not self._ready():
            self._changed.clear()
            await self._changed.wait()
        texts, tokens = [], []
        for stream in self.streams:
            texts.append(stream.new())
            tokens.append(stream.tokens - stream.taken_tokens)
            stream.taken_tokens, stream.taken_pieces = stream.tokens, len(stream.pieces)
        return texts, tokens

    async def finish(self) -> list[Proposal]:
        """Stop the proposers still writing and wait for their proposals."""
        self.closed = True
        while not self.complete:
            self._changed.clear()
            await self._changed.wait()
        return [s.proposal for s in self.streams if s.proposal is not None]

    def errors(self) -> list[str]:
        return [p["error"] for s in self.streams if (p := s.proposal) is not None and p["error"]]

    def failures(self) -> str:
        return "; ".join(
            f"proposer {p['index']} ({p['model']}): {p['error']}"
            for s in self.streams
            if (p := s.proposal) is not None and p["error"]
        )


def prefills(layout: str, model: Any) -> bool:
    """Whether ``staircase_layout=layout`` continues ``model``'s unfinished message (``"prefill"``);
    ``"auto"`` does for the embedded local models, whose llama.cpp server is known to."""
    if layout != "auto":
        return layout == "prefill"
    from langchain_moa.local import is_embedded  # the local backend's module, not its extra

    return is_embedded(model)


def joined(written: str, text: str) -> str:
    """``text`` as it continues ``written``: a space before it where two words would otherwise touch
    (each round is a new assistant turn, which starts without one)."""
    if written and text and not written[-1].isspace() and text[0].isalnum():
        return " " + text
    return text


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
