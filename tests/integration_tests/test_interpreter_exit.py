"""A program that leaves work on the sync bridge's background loop still exits cleanly: pending work is
cancelled and async generators are closed (a fresh interpreter, run to its end)."""

from __future__ import annotations

import subprocess
import sys

_EXIT_SCRIPT = """
import asyncio, sys
from langchain_moa import sync_bridge

async def numbers():
    try:
        for i in range(100):
            yield i
            await asyncio.sleep(0)
    finally:
        print("generator closed", flush=True)

async def forever():
    try:
        await asyncio.sleep(3600)
    finally:
        print("pending work cancelled", flush=True)

stream = sync_bridge.iterate(numbers())
print(next(stream), flush=True)
loop = sync_bridge._loop_for_this_thread()
asyncio.run_coroutine_threadsafe(forever(), loop)
"""


def test_at_exit_pending_work_is_cancelled_and_async_generators_closed() -> None:
    done = subprocess.run([sys.executable, "-c", _EXIT_SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "0"
    assert {"generator closed", "pending work cancelled"} <= set(done.stdout.splitlines())
    assert "Task was destroyed" not in done.stderr and "Traceback" not in done.stderr
