"""The run events of a MoA call: what every consumer (the chat model, the ``moa`` command, a
LangGraph Server client) reads while MoA works.

The graph's nodes send them on LangGraph's custom stream (``stream_mode="custom"``), in this order
for each layer and then the aggregator::

    ProposerStarted  a proposer's model call started (it holds a max_concurrency slot)
    ProposalChunk    one streamed token of a proposal (with ``staircase``, or for a live view)
    ProposalReady    a proposer answered, failed, timed out or was cut (the ``Proposal``)
    AggregatorStarted  the aggregator started, with how many references it got
    AggregatorRound  with ``staircase``: the aggregator took in a round of chunks and writes on
    Token            one streamed chunk of the aggregator's answer
    Answer           the answer, assembled once: summed usage, every proposal in its metadata

Each event is a frozen dataclass whose ``kind`` names it (it survives JSON, e.g. from LangGraph
Server). To watch the events of ``MoAChatModel`` calls, register an observer::

    with observe(print):
        moa.invoke("Why is the sky blue?")
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

from langchain_core.messages import AIMessage, AIMessageChunk
from langgraph.config import get_stream_writer

from langchain_moa.state import Proposal

__all__ = [
    "AggregatorRound",
    "AggregatorStarted",
    "Agreed",
    "Answer",
    "MoAEvent",
    "ProposalChunk",
    "ProposalReady",
    "ProposerStarted",
    "Token",
    "emit",
    "observe",
    "observers",
    "unobserved",
    "watching_proposal_text",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class ProposerStarted:
    """A proposer's model call started."""

    node: str
    layer: int
    index: int
    model: str
    kind: Literal["proposer_started"] = "proposer_started"


@dataclass(frozen=True, kw_only=True, slots=True)
class ProposalChunk:
    """One streamed token of a proposal: one the aggregator reads while it is written (``staircase``),
    or any proposal when an observer asked for ``proposal_text``."""

    node: str
    layer: int
    index: int
    text: str
    kind: Literal["proposal_chunk"] = "proposal_chunk"


@dataclass(frozen=True, kw_only=True, slots=True)
class ProposalReady:
    """A proposer finished: its answer, or why it has none."""

    proposal: Proposal
    kind: Literal["proposal"] = "proposal"


@dataclass(frozen=True, kw_only=True, slots=True)
class AggregatorStarted:
    """The aggregator started on ``references`` proposals."""

    model: str
    references: int
    kind: Literal["aggregator_started"] = "aggregator_started"


@dataclass(frozen=True, kw_only=True, slots=True)
class AggregatorRound:
    """The aggregator took in round ``round`` of the proposals' chunks (``complete``: the last)."""

    round: int
    complete: bool
    kind: Literal["aggregator_round"] = "aggregator_round"


@dataclass(frozen=True, kw_only=True, slots=True)
class Agreed:
    """A layer's proposals agreed (``early_exit``, ``cascade``): what runs no more, and, when MoA answers
    with one of them, which (``chosen``; ``None`` when the aggregator still runs)."""

    layer: int
    agreeing: list[int]
    chosen: int | None
    skipped: list[str]
    """The nodes that will not run: later proposers, the rest of a cascade, the aggregator."""
    kind: Literal["agreed"] = "agreed"


@dataclass(frozen=True, kw_only=True, slots=True)
class Token:
    """One streamed chunk of the aggregator's answer."""

    chunk: AIMessageChunk
    kind: Literal["token"] = "token"


@dataclass(frozen=True, kw_only=True, slots=True)
class Answer:
    """The MoA answer: the aggregator's reply with summed usage and ``response_metadata["moa"]``."""

    message: AIMessage
    kind: Literal["answer"] = "answer"


MoAEvent = (
    ProposerStarted
    | ProposalChunk
    | ProposalReady
    | Agreed
    | AggregatorStarted
    | AggregatorRound
    | Token
    | Answer
)
"""Any run event."""


def emit(event: MoAEvent) -> None:
    """Send ``event`` on the running graph's custom stream (a no-op when nobody streams it, or outside
    a graph run, as when ``moa eval exact`` aggregates journalled proposals again)."""
    try:
        writer = get_stream_writer()
    except RuntimeError:
        return
    writer(event)


Observer = Callable[[MoAEvent], None]

_observers: ContextVar[tuple[Observer, ...]] = ContextVar("langchain_moa_observers", default=())
_proposal_text: ContextVar[bool] = ContextVar("langchain_moa_proposal_text", default=False)


@contextlib.contextmanager
def observe(observer: Observer, *, proposal_text: bool = False) -> Iterator[None]:
    """Send every event of the ``MoAChatModel`` calls made in this block to ``observer``.

    The observer is called in the order the events happen, from the task that runs the call; a MoA
    used as a model inside another MoA reports to nobody (its events are its own graph's). With
    ``proposal_text``, every proposer streams its answer and each token is a ``ProposalChunk`` (for a
    view that shows the proposals as they are written; a streamed proposal is retried by its model's
    own client only, as a streamed answer is).
    """
    token = _observers.set((*_observers.get(), observer))
    text = _proposal_text.set(_proposal_text.get() or proposal_text)
    try:
        yield
    finally:
        _proposal_text.reset(text)
        _observers.reset(token)


def observers() -> tuple[Observer, ...]:
    """The observers of the current context."""
    return _observers.get()


def watching_proposal_text() -> bool:
    """Whether an observer of the current context asked for every proposal's tokens."""
    return _proposal_text.get()


@contextlib.contextmanager
def unobserved() -> Iterator[None]:
    """No observers in this block (a MoA call's own graph runs so: its models report to nobody)."""
    token, text = _observers.set(()), _proposal_text.set(False)
    try:
        yield
    finally:
        _proposal_text.reset(text)
        _observers.reset(token)
