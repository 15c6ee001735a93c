"""The proposers' side of a staircase: the last layer's streams, shared with the aggregator of the
same run, and a proposer writing into them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, message_chunk_to_message
from langchain_core.messages.ai import add_ai_message_chunks
from langchain_core.runnables import RunnableConfig

from langchain_moa.conversation import as_chunk
from langchain_moa.events import ProposalChunk, emit
from langchain_moa.nodes import ChatRunnable, superstep_id
from langchain_moa.state import Proposal
from langchain_moa.tail_latency import Meetings, ProposalCut

__all__ = ["Staircase", "Staircases", "stream_proposal"]


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


class Staircases:
    """The staircases of one graph: in each run, the last layer's ``size`` proposers and the
    aggregator (separate nodes of one superstep) meet in one ``Staircase`` of ``chunk`` tokens."""

    def __init__(self, size: int, chunk: int) -> None:
        self.size, self.chunk = size, chunk
        self._meetings: Meetings[Staircase] = Meetings()

    @contextlib.contextmanager
    def join(self) -> Iterator[Staircase]:
        """This run's staircase, for the node calling (a proposer of the last layer or the aggregator)."""
        with self._meetings.join(
            superstep_id(), self.size + 1, lambda: Staircase(self.size, self.chunk)
        ) as one:
            yield one


async def stream_proposal(
    staircase: Staircase | None,
    model: ChatRunnable,
    messages: list[BaseMessage],
    config: RunnableConfig,
    kwargs: dict[str, Any],
    *,
    node: str,
    layer: int,
    index: int,
) -> BaseMessage:
    """Proposer ``index``'s whole proposal, each token sent as a ``ProposalChunk`` event and, with a
    ``staircase``, handed to the aggregator as it arrives; cut (``ProposalCut``) once the aggregator
    needs no more."""
    chunks: list[AIMessageChunk] = []
    # Closed on leaving, not when garbage is collected: a cut proposal stops its HTTP stream at once.
    async with contextlib.aclosing(model.astream(messages, config, **kwargs)) as stream:
        async for raw in stream:
            chunk = as_chunk(raw)
            chunks.append(chunk)
            if chunk.text:
                if staircase is not None:
                    staircase.wrote(index, chunk.text)
                emit(ProposalChunk(node=node, layer=layer, index=index, text=chunk.text))
            if staircase is not None and staircase.closed:
                raise ProposalCut("cut: the aggregator had used all its max_tokens")
    if not chunks:
        return AIMessage(content="")
    return message_chunk_to_message(add_ai_message_chunks(*chunks) if len(chunks) > 1 else chunks[0])
