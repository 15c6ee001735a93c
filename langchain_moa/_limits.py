"""A bound on simultaneous model calls, shared by every call of one MoA model.

LangGraph's ``max_concurrency`` bounds the parallel nodes of *one* run; MoA needs the bound to hold
across runs too (``abatch`` of many conversations), so the semaphore lives with the graph.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext


class CallLimit:
    """At most ``limit`` model calls at once (``None``: no bound).

    The sync bound is a thread semaphore; the async bound is one asyncio semaphore per event loop
    (an asyncio semaphore cannot be shared between loops). So the bound holds across all sync calls,
    and across all async calls of one event loop; sync and async calls at once each get ``limit``.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._thread_slots = threading.BoundedSemaphore(limit) if limit else None
        self._loop_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._loop_slots = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    @contextmanager
    def sync_slot(self) -> Iterator[None]:
        """Hold one slot while a sync call runs."""
        with self._thread_slots or nullcontext():
            yield

    @asynccontextmanager
    async def async_slot(self) -> AsyncIterator[None]:
        """Hold one slot while an async call runs."""
        if not self.limit:
            yield
            return
        loop = asyncio.get_running_loop()
        with self._lock:
            slots = self._loop_slots.setdefault(loop, asyncio.Semaphore(self.limit))
        async with slots:
            yield
