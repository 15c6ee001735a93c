"""Tail-latency control for one proposer layer: a quorum and a deadline shared by its proposers.

The proposers of a layer are separate graph nodes running in the same superstep; they meet on a
``LayerRace`` (keyed by the superstep's checkpoint id and the layer). Each proposer runs its model call
through the race, which gives up the call when the layer has enough: ``quorum`` answers, or, once
``deadline`` seconds have passed since the layer started, ``min_proposals`` answers. An async call that
is given up is cancelled (its HTTP request is closed); a sync call cannot be, and is abandoned to its
thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import dataclass, field
from typing import TypeVar

_T = TypeVar("_T")


class ProposalCut(Exception):
    """The layer had enough answers before this proposer's."""


@dataclass(frozen=True)
class RaceRules:
    """When a layer stops waiting for its slower proposers."""

    quorum: int | None = None
    """Answers after which the rest are cut (``None``: wait for all)."""
    deadline: float | None = None
    """Seconds after which the rest are cut, once ``min_proposals`` answers are in."""
    min_proposals: int = 1
    timeout: float | None = None
    """Seconds one call may take (``proposer_timeout``)."""

    @property
    def active(self) -> bool:
        return self.quorum is not None or self.deadline is not None or self.timeout is not None


@dataclass
class LayerRace:
    """The shared state of one layer's proposers in one run."""

    rules: RaceRules
    started: float = field(default_factory=time.monotonic)
    answered: int = 0
    _left: int = 0
    _lock: threading.Condition = field(default_factory=threading.Condition)
    _changed: asyncio.Event | None = None

    def enough(self) -> str | None:
        """Why the layer needs no more answers, or ``None`` while it does."""
        quorum, deadline = self.rules.quorum, self.rules.deadline
        if quorum is not None and self.answered >= quorum:
            return f"cut: {self.answered} proposals were in (proposal_quorum={quorum})"
        if deadline is not None and self.answered >= self.rules.min_proposals and self._past_deadline():
            return f"cut: layer_deadline of {deadline}s passed with {self.answered} proposals in"
        return None

    def _past_deadline(self) -> bool:
        return self.rules.deadline is not None and time.monotonic() >= self.started + self.rules.deadline

    def _wait_bound(self, stop_at: float | None) -> float | None:
        """Seconds until the next moment something can change without an answer arriving."""
        moments = [stop_at] if stop_at is not None else []
        if self.rules.deadline is not None and not self._past_deadline():
            moments.append(self.started + self.rules.deadline)
        return max(0.0, min(moments) - time.monotonic()) if moments else None

    def record(self, answered: bool) -> None:
        """Count one finished proposer and wake the others."""
        with self._lock:
            self.answered += answered
            self._lock.notify_all()
        if self._changed is not None:
            self._changed.set()

    async def arun(self, call: Awaitable[_T]) -> _T:
        """Await ``call`` until it answers, times out, or the layer has enough (then cancel it)."""
        task = asyncio.ensure_future(call)
        stop_at = None if self.rules.timeout is None else time.monotonic() + self.rules.timeout
        try:
            while True:
                if reason := self.enough():
                    raise ProposalCut(reason)
                if stop_at is not None and time.monotonic() >= stop_at:
                    raise TimeoutError(f"no answer within {self.rules.timeout}s (proposer_timeout)")
                if self._changed is None or self._changed.is_set():
                    self._changed = asyncio.Event()
                waiter = asyncio.ensure_future(self._changed.wait())
                try:
                    done, _ = await asyncio.wait(
                        {task, waiter}, timeout=self._wait_bound(stop_at), return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    waiter.cancel()
                if task in done:
                    return task.result()
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task  # the call has really stopped when this returns

    def run(self, call: Callable[[], _T]) -> _T:
        """Run ``call`` in a thread until it answers, times out, or the layer has enough."""
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="moa-proposer")
        future: Future[_T] = pool.submit(copy_context().run, call)
        pool.shutdown(wait=False)
        future.add_done_callback(lambda _: self._notify())
        stop_at = None if self.rules.timeout is None else time.monotonic() + self.rules.timeout
        with self._lock:
            while not future.done():
                if reason := self.enough():
                    raise ProposalCut(reason)
                if stop_at is not None and time.monotonic() >= stop_at:
                    raise TimeoutError(f"no answer within {self.rules.timeout}s (proposer_timeout)")
                self._lock.wait(timeout=self._wait_bound(stop_at))
        return future.result()

    def _notify(self) -> None:
        with self._lock:
            self._lock.notify_all()


class RaceTrack:
    """The races of one graph, one per layer per run, dropped when their last proposer leaves."""

    def __init__(self, rules: RaceRules) -> None:
        self.rules = rules
        self._races: dict[tuple[str, int], LayerRace] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def join(self, run: str, layer: int, size: int) -> Iterator[LayerRace]:
        """The race of ``layer`` in ``run`` (a superstep id), which ``size`` proposers share."""
        key = (run, layer)
        with self._lock:
            race = self._races.setdefault(key, LayerRace(self.rules))
        try:
            yield race
        finally:
            with self._lock:
                race._left += 1
                if race._left == size:
                    del self._races[key]
