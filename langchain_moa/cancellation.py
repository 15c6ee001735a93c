"""Stopping a task for good: cancel it, then wait until it has stopped, however often we are cancelled.

Two things can keep a cancelled model call running, and each is handled here:

- Awaiting a task forwards the waiter's cancellation into it. A waiter cancelled a second time while
  the task cleans up (anyio and Starlette do so when a client leaves) would interrupt that clean-up,
  which is where LangGraph cancels the nodes of a run and waits for them: it would leave them running.
  ``stop`` waits without forwarding, and re-raises the waiter's cancellation afterwards.
- A cancel can be lost inside a provider's client. On Python 3.11, ``asyncio.wait_for`` (which HTTP
  clients use to bound each read) swallows a cancel that lands just as its result arrives, and the
  call streams on to its end. So work that calls models directly (a graph node) runs under
  ``until_cancelled``: its cancel is sent again until the work has stopped, whatever the Python
  version; the next one lands at the call's next ``await``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["RECANCEL_AFTER", "stop", "until_cancelled"]

_T = TypeVar("_T")

RECANCEL_AFTER = 0.05
"""Seconds ``insist`` waits for a cancelled task to stop before it cancels it again."""


async def stop(task: asyncio.Future[Any], *, insist: bool = False) -> None:
    """Cancel ``task`` and return once it is done; its result or error is dropped.

    Args:
        task: the task to stop.
        insist: cancel it again every ``RECANCEL_AFTER`` seconds until it stops: for work that calls
            models directly, whose clients can lose a cancel. Not for a LangGraph run, which stops its
            own nodes once cancelled and must not be interrupted while it does.

    Raises:
        asyncio.CancelledError: the caller was cancelled while waiting (after ``task`` has stopped).
    """
    interrupted = False
    task.cancel()
    while not task.done():
        try:
            # Unlike ``await task``, a cancel of ours stays ours.
            await asyncio.wait({task}, timeout=RECANCEL_AFTER if insist else None)
        except asyncio.CancelledError:
            interrupted = True
        if insist and not task.done():
            task.cancel()
    if not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" in the log
    if interrupted:
        raise asyncio.CancelledError


async def until_cancelled(work: Coroutine[Any, Any, _T]) -> _T:
    """``work``'s result; when the caller is cancelled, ``work`` is stopped for good first (``stop``
    with ``insist``), so that no model call it made outlives it."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task})
    except asyncio.CancelledError:
        await stop(task, insist=True)
        raise
    return task.result()
