"""Stopping a task for good: cancel it, then wait until it has stopped, however often we are cancelled.

Awaiting a task forwards the waiter's cancellation into it. A waiter cancelled a second time while the
task cleans up (anyio and Starlette do so when a client leaves and the response is torn down) would
interrupt that clean-up, which is where LangGraph cancels the model calls of a run: they would go on
spending. ``stop`` waits without forwarding, and re-raises the waiter's cancellation afterwards.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["stop"]


async def stop(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and return once it is done; its result or error is dropped.

    Raises:
        asyncio.CancelledError: the caller was cancelled while waiting (after ``task`` has stopped).
    """
    task.cancel()
    interrupted = False
    while not task.done():
        try:
            await asyncio.wait({task})  # unlike ``await task``, a cancel of ours stays ours
        except asyncio.CancelledError:
            interrupted = True
    if not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" in the log
    if interrupted:
        raise asyncio.CancelledError
