"""When MoA stops waiting: timeouts, the layer quorum and deadline, and the bound on calls at once.

One policy, ``TailLatency``, used by every node on every path (sync calls drive the same async code,
see ``sync_bridge``), so a sync and an async call behave the same:

- ``max_concurrency`` bounds simultaneous model calls across every call of one MoA (one semaphore per
  event loop; sync calls all run on one background loop, so the bound holds across them too).
- ``proposer_timeout`` bounds one proposer call from the moment it holds a slot; the call is cancelled.
- ``proposal_quorum`` and ``layer_deadline`` let a layer go on without its slower proposers. The
  proposers of a layer are separate graph nodes in one superstep; they meet on a ``LayerRace`` keyed by
  the superstep's checkpoint id and the layer. A proposer still queued for a slot can be cut too.
- ``aggregator_timeout`` bounds the aggregator's whole streamed answer.

A cancelled call is really stopped: its task is cancelled and awaited (its HTTP request is closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from langchain_moa.cancellation import stop

if TYPE_CHECKING:
    from langchain_moa.options import MoAOptions

__all__ = ["CallLimit", "LayerRace", "Meetings", "ProposalCut", "TailLatency"]

_T = TypeVar("_T")
_S = TypeVar("_S")


class ProposalCut(Exception):
    """The layer had enough answers before this proposer's."""


class CallLimit:
    """At most ``limit`` model calls at once (``None``: no bound), across every run of one graph.

    LangGraph's own ``max_concurrency`` bounds the parallel nodes of one run; MoA needs the bound to
    hold across runs too (``abatch`` of many conversations), so the semaphore lives with the graph. An
    asyncio semaphore belongs to one event loop: there is one per loop.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._slots = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot while a call runs."""
        if not self.limit:
            yield
            return
        loop = asyncio.get_running_loop()
        with self._lock:
            slots = self._slots.setdefault(loop, asyncio.Semaphore(self.limit))
        async with slots:
            yield


class Meetings(Generic[_S]):
    """Objects that the nodes of one superstep share, keyed by its checkpoint id (the proposers of a
    layer are separate nodes): made by the first node to arrive, dropped when the last one leaves."""

    def __init__(self) -> None:
        self._open: dict[Hashable, tuple[_S, list[int]]] = {}

    @contextlib.contextmanager
    def join(self, key: Hashable, size: int, make: Callable[[], _S]) -> Iterator[_S]:
        """The object of ``key``, shared by ``size`` nodes (``make`` makes it for the first)."""
        if key not in self._open:
            self._open[key] = (make(), [size])
        shared, left = self._open[key]
        try:
            yield shared
        finally:
            left[0] -= 1
            if not left[0]:
                del self._open[key]


@contextlib.asynccontextmanager
async def within(seconds: float | None, option: str) -> AsyncIterator[None]:
    """Cancel the block after ``seconds``, raising ``TimeoutError`` that names ``option``.

    A ``TimeoutError`` the block raises itself (a model's own client timeout) passes unchanged.
    """
    deadline = asyncio.timeout(seconds)
    try:
        async with deadline:
            yield
    except TimeoutError as error:
        if deadline.expired():
            raise TimeoutError(f"no answer within {seconds}s ({option})") from error
        raise


@dataclass
class LayerRace:
    """The shared state of one layer's proposers in one run."""

    quorum: int | None
    """Answers after which the rest are cut (``None``: wait for all)."""
    deadline: float | None
    """Seconds after which the rest are cut, once ``min_proposals`` answers are in."""
    min_proposals: int
    started: float = field(default_factory=time.monotonic)
    answered: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def enough(self) -> str | None:
        """Why the layer needs no more answers, or ``None`` while it does."""
        if self.quorum is not None and self.answered >= self.quorum:
            return f"cut: {self.answered} proposals were in (proposal_quorum={self.quorum})"
        if self.deadline is not None and self.answered >= self.min_proposals and self._past_deadline():
            return f"cut: layer_deadline of {self.deadline}s passed with {self.answered} proposals in"
        return None

    def _past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.started + self.deadline

    def record(self, answered: bool) -> None:
        """Count one finished proposer and wake the others."""
        self.answered += answered
        self._changed.set()

    async def run(self, call: Awaitable[_T]) -> _T:
        """Await ``call`` until it finishes or the layer has enough (then cancel it: ``ProposalCut``)."""
        task = asyncio.ensure_future(call)
        try:
            while True:
                if reason := self.enough():
                    raise ProposalCut(reason)
                changed = asyncio.ensure_future(self._changed.wait())
                wake_at = None if self._past_deadline() else self.deadline
                timeout = None if wake_at is None else max(0.0, self.started + wake_at - time.monotonic())
                try:
                    await asyncio.wait({task, changed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    changed.cancel()
                self._changed.clear()
                if task.done():
                    return task.result()
        finally:
            if not task.done():
                await stop(task, insist=True)  # the call has really stopped when this returns


class TailLatency:
    """The one policy every node follows (see the module's documentation)."""

    def __init__(self, options: MoAOptions) -> None:
        self.limit = CallLimit(options.max_concurrency)
        self.proposer_timeout = options.proposer_limit
        self.aggregator_timeout = options.aggregator_limit
        self.quorum = options.proposal_quorum
        self.deadline = options.layer_deadline
        self.min_proposals = options.min_proposals
        self.races = self.quorum is not None or self.deadline is not None
        """Whether the proposers of a layer race (a quorum or a deadline is set)."""
        self._races: Meetings[LayerRace] = Meetings()

    @contextlib.contextmanager
    def race(self, superstep: str, layer: int, size: int) -> Iterator[LayerRace | None]:
        """The race of ``layer`` in one run (``superstep``: its checkpoint id), which ``size``
        proposers share; ``None`` when no quorum or deadline is set."""
        if not self.races:
            yield None
            return
        with self._races.join(
            (superstep, layer), size, lambda: LayerRace(self.quorum, self.deadline, self.min_proposals)
        ) as race:
            yield race

    async def propose(self, race: LayerRace | None, call: Callable[[], Awaitable[_T]]) -> _T:
        """Run one proposer call: queued for a slot, bounded by ``proposer_timeout``, raced."""

        if race is None and not self.limit.limit and self.proposer_timeout is None:
            return await call()  # nothing to enforce: no wrapping on the common path

        async def bounded() -> _T:
            async with self.limit.slot(), within(self.proposer_timeout, "proposer_timeout"):
                return await call()

        return await (bounded() if race is None else race.run(bounded()))

    @contextlib.asynccontextmanager
    async def aggregating(self) -> AsyncIterator[None]:
        """Hold a slot and bound the aggregator's answer by ``aggregator_timeout``."""
        if not self.limit.limit and self.aggregator_timeout is None:
            yield
            return
        async with self.limit.slot(), within(self.aggregator_timeout, "aggregator_timeout"):
            yield
