"""Sync calls drive the async core on one background loop: same results, real cancellation."""

from __future__ import annotations

import asyncio
import contextvars
import os
import signal
import threading

import pytest

from langchain_moa import sync_bridge

_name: contextvars.ContextVar[str] = contextvars.ContextVar("name", default="unset")


def test_a_coroutine_runs_on_the_background_loop_in_the_callers_context() -> None:
    async def where() -> tuple[str, str]:
        return threading.current_thread().name, _name.get()

    token = _name.set("caller")
    try:
        assert sync_bridge.run(where()) == ("langchain-moa", "caller")
    finally:
        _name.reset(token)


def test_an_interrupt_cancels_the_running_coroutine(ctrl_c: None) -> None:
    stopped = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stopped.set()
            raise

    threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT)).start()  # Ctrl-C
    with pytest.raises(KeyboardInterrupt):
        sync_bridge.run(forever())
    assert stopped.wait(5)


def test_iterate_yields_in_order_and_closing_it_closes_the_async_generator() -> None:
    closed = threading.Event()

    async def numbers() -> object:
        try:
            for i in range(100):
                yield i
        finally:
            closed.set()

    items = sync_bridge.iterate(numbers())  # type: ignore[arg-type]
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()  # type: ignore[attr-defined]
    assert closed.wait(5)


def test_a_sync_call_made_on_the_loop_thread_itself_still_answers() -> None:
    async def inner() -> str:
        return "inner"

    async def outer() -> str:
        return sync_bridge.run(inner())  # e.g. a sync callback handler calling a sync API

    assert sync_bridge.run(outer()) == "inner"


def test_a_stream_driven_from_the_loop_thread_itself_yields_everything() -> None:
    async def words() -> object:
        for word in ("one", "two", "three", "four"):
            await asyncio.sleep(0)
            yield word

    async def outer() -> list[str]:
        return list(sync_bridge.iterate(words()))  # type: ignore[arg-type]

    assert sync_bridge.run(outer()) == ["one", "two", "three", "four"]


def test_a_system_exit_inside_a_call_reaches_the_caller_and_the_loop_lives_on() -> None:
    async def leave() -> None:
        raise SystemExit(3)

    async def answer() -> int:
        return 42

    with pytest.raises(SystemExit):
        sync_bridge.run(leave())
    assert sync_bridge.run(answer()) == 42


def test_sync_calls_nested_in_callbacks_stop_at_a_depth_limit_with_a_clear_error() -> None:
    threads_before = threading.active_count()
    depths: list[int] = []

    def nested(depth: int) -> int:
        async def step() -> int:
            depths.append(depth)
            return nested(depth + 1)  # sync code run by the loop calls the bridge again

        return sync_bridge.run(step())

    with pytest.raises(RecursionError, match=f"nested {sync_bridge.MAX_DEPTH} deep"):
        nested(0)
    assert max(depths) == sync_bridge.MAX_DEPTH - 1
    assert threading.active_count() - threads_before <= sync_bridge.MAX_DEPTH


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_child_gets_a_loop_of_its_own() -> None:
    async def answer() -> int:
        return os.getpid()

    assert sync_bridge.run(answer()) == os.getpid()  # the parent's loop exists
    child = os.fork()
    if child == 0:  # the child: its first sync call must not wait on the parent's dead thread
        try:
            code = 0 if sync_bridge.run(answer()) == os.getpid() else 1
        finally:
            os._exit(code if "code" in dir() else 2)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
