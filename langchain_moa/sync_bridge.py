"""Sync calls drive the async core on a background event loop.

MoA's behaviour is written once, as async code; ``invoke``, ``stream`` and a compiled graph's sync
``invoke`` run it here. So a sync call has the async call's semantics exactly: a cut or timed-out
proposer is cancelled (its HTTP request closed), not abandoned to a thread, and Ctrl-C in a sync call
cancels the run. The loop runs in a daemon thread, started on first use; each call runs in a copy of
the caller's context (tracing and LangGraph's run context carry over).

Sync code that the loop itself runs (a sync callback handler, say) may make a sync MoA call too: it
gets a loop one level deeper, since the first one is busy running that very code, up to
``MAX_DEPTH`` levels (a callback that calls ``invoke`` from every call would otherwise make threads
without bound). At exit the loops are shut down cleanly (pending work cancelled, async generators
closed); a child process made by ``os.fork()`` starts with none (threads do not survive a fork).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextvars import Context, copy_context
from typing import Any, TypeVar

__all__ = ["MAX_DEPTH", "iterate", "run"]

MAX_DEPTH = 8
"""How deeply sync MoA calls may nest inside one another's sync code."""

_T = TypeVar("_T")


class _Loop:
    """One event loop in a daemon thread."""

    def __init__(self, depth: int) -> None:
        self.loop = asyncio.new_event_loop()
        name = "langchain-moa" if depth == 0 else f"langchain-moa-{depth}"
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()


_loops: list[_Loop] = []
_lock = threading.Lock()
_exiting = False
"""Set at exit: no loop is started any more (a new thread would hang the interpreter's shutdown)."""


def _loop_for_this_thread() -> asyncio.AbstractEventLoop:
    """The first loop that is not the one running the calling code (started, or restarted, on demand)."""
    current = threading.current_thread()
    with _lock:
        if _exiting:
            msg = "the interpreter is exiting: no more sync MoA calls"
            raise RuntimeError(msg)
        depth = next((i + 1 for i, loop in enumerate(_loops) if loop.thread is current), 0)
        if depth >= MAX_DEPTH:
            msg = (
                f"sync MoA calls nested {MAX_DEPTH} deep (a sync callback calling invoke from inside "
                "invoke?): make the inner call with ainvoke from async code, or outside the callback"
            )
            raise RecursionError(msg)
        while len(_loops) <= depth:
            _loops.append(_Loop(len(_loops)))
        if not _loops[depth].thread.is_alive():  # cannot happen while calls are guarded; never hang
            _loops[depth] = _Loop(depth)
        return _loops[depth].loop


def _shut_down() -> None:
    """At exit: cancel what is still pending on each loop, close async generators, stop the loops."""
    global _exiting
    with _lock:
        _exiting = True
        loops = list(reversed(_loops))  # the deepest first: its callers wait on it
        _loops.clear()
    for each in loops:
        if not each.thread.is_alive():
            continue
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_finish(), each.loop).result(timeout=5)
        each.loop.call_soon_threadsafe(each.loop.stop)
        each.thread.join(timeout=5)
        if not each.thread.is_alive():
            each.loop.close()


async def _finish() -> None:
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()


def _forget_after_fork() -> None:
    # The child has the parent's memory but none of its threads: its loops must be new ones.
    global _lock, _exiting
    _loops.clear()
    _exiting = False
    _lock = threading.Lock()


atexit.register(_shut_down)
os.register_at_fork(after_in_child=_forget_after_fork)


async def _guarded(coroutine: Coroutine[Any, Any, _T]) -> tuple[_T | None, BaseException | None]:
    """The coroutine's result or exception, never raised into the loop (a SystemExit or
    KeyboardInterrupt escaping a task would stop the loop, and every waiting call with it)."""
    try:
        return await coroutine, None
    except asyncio.CancelledError:
        raise
    except BaseException as error:  # handed to the waiting caller
        return None, error


def run(coroutine: Coroutine[Any, Any, _T], context: Context | None = None) -> _T:
    """Run ``coroutine`` on a background loop and wait for its result.

    An interrupt (Ctrl-C) or any other exception while waiting cancels the coroutine, and waits for
    it to stop, before it propagates.
    """
    context = context or copy_context()
    try:
        loop = _loop_for_this_thread()
    except BaseException:
        coroutine.close()  # it will never run
        raise
    done: concurrent.futures.Future[tuple[Any, BaseException | None]] = concurrent.futures.Future()
    task: asyncio.Task[Any] | None = None

    def start() -> None:
        nonlocal task
        task = loop.create_task(_guarded(coroutine), context=context)
        task.add_done_callback(lambda t: _settle(t, done))

    loop.call_soon_threadsafe(start)
    try:
        while True:  # waits in slices, so that an interrupt is handled at once on every platform
            with contextlib.suppress(TimeoutError):
                result, error = done.result(timeout=0.1)
                break
    except BaseException:
        if not done.done():
            loop.call_soon_threadsafe(lambda: task.cancel() if task else None)
            with contextlib.suppress(BaseException):
                done.result(timeout=10)
        raise
    if error is not None:
        raise error
    return result  # type: ignore[no-any-return]


def _settle(task: asyncio.Task[Any], done: concurrent.futures.Future[Any]) -> None:
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
        if close is not None and not _exiting:  # at exit, the loops closed their generators already
            run(close(), context)


async def _next(iterator: AsyncIterator[_T]) -> _T:
    return await anext(iterator)
