"""Sync calls drive the async core on one background event loop.

MoA's behaviour is written once, as async code; ``invoke``, ``stream`` and a compiled graph's sync
``invoke`` run it here. So a sync call has the async call's semantics exactly: a cut or timed-out
proposer is cancelled (its HTTP request closed), not abandoned to a thread, and Ctrl-C in a sync call
cancels the run. The loop runs in one daemon thread, started on first use; each call runs in a copy
of the caller's context (tracing and LangGraph's run context carry over).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextvars import Context, copy_context
from typing import Any, TypeVar

__all__ = ["iterate", "run"]

_T = TypeVar("_T")

_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    with _lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            _thread = threading.Thread(target=loop.run_forever, name="langchain-moa", daemon=True)
            _thread.start()
            _loop = loop
        return _loop


def run(coroutine: Coroutine[Any, Any, _T], context: Context | None = None) -> _T:
    """Run ``coroutine`` on the background loop and wait for its result.

    An interrupt (Ctrl-C) or any other exception while waiting cancels the coroutine, and waits for
    it to stop, before it propagates.
    """
    context = context or copy_context()
    if threading.current_thread() is _thread:
        # Called from code the loop itself runs (e.g. a sync callback handler): waiting on the loop
        # would block it for good, so this call gets a loop of its own in a worker thread.
        with concurrent.futures.ThreadPoolExecutor(1) as worker:
            return worker.submit(context.run, asyncio.run, coroutine).result()
    loop = _background_loop()
    done: concurrent.futures.Future[_T] = concurrent.futures.Future()
    task: asyncio.Task[_T] | None = None

    def start() -> None:
        nonlocal task
        task = loop.create_task(coroutine, context=context)
        task.add_done_callback(lambda t: _settle(t, done))

    loop.call_soon_threadsafe(start)
    try:
        while True:  # waits in slices, so that an interrupt is handled at once on every platform
            with contextlib.suppress(TimeoutError):
                return done.result(timeout=0.1)
    except BaseException:
        if not done.done():
            loop.call_soon_threadsafe(lambda: task.cancel() if task else None)
            with contextlib.suppress(BaseException):
                done.result(timeout=10)
        raise


def _settle(task: asyncio.Task[_T], done: concurrent.futures.Future[_T]) -> None:
    if task.cancelled():
        done.set_exception(asyncio.CancelledError())
    elif (error := task.exception()) is not None:
        done.set_exception(error)
    else:
        done.set_result(task.result())


def iterate(iterator: AsyncIterator[_T]) -> Iterator[_T]:
    """Iterate an async iterator from sync code, each step on the background loop.

    Every step runs in the same copy of the caller's context, as one async generator would. Closing
    the sync iterator (or abandoning it) closes the async one.
    """
    context = copy_context()
    try:
        while True:
            try:
                yield run(_next(iterator), context)
            except StopAsyncIteration:
                return
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            run(close(), context)


async def _next(iterator: AsyncIterator[_T]) -> _T:
    return await anext(iterator)
