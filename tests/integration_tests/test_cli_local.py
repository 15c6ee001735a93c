"""``moa chat`` in a real terminal with the real local model: Ctrl-C cancels an answer, not the chat."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.local_model, pytest.mark.slow]

MOA = str(Path(sys.executable).with_name("moa"))


def _read_until(fd: int, marker: str, timeout: float) -> str:
    seen, deadline = "", time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} within {timeout}s; got: {seen[-500:]!r}"
        if select.select([fd], [], [], left)[0]:
            seen += os.read(fd, 4096).decode(errors="replace")
    return seen


def test_ctrl_c_cancels_the_answer_and_the_chat_goes_on(ctrl_c: None) -> None:
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [MOA, "chat", "--preset", "local", "--max-tokens", "400"],
        stdin=follower, stdout=follower, stderr=follower, start_new_session=True,
    )  # fmt: skip
    os.close(follower)
    try:
        _read_until(leader, ">>> ", timeout=120)
        os.write(leader, b"Write a long essay about the history of the Roman Empire.\n")
        _read_until(leader, "waiting", timeout=60)  # the live view shows the proposers at work
        os.killpg(process.pid, signal.SIGINT)
        after = _read_until(leader, "(answer cancelled)", timeout=30)
        after += _read_until(leader, ">>> ", timeout=30)
        os.write(leader, b"exit\n")
        assert process.wait(timeout=30) == 0
        assert "Traceback" not in after
    finally:
        if process.poll() is None:
            process.kill()
        os.close(leader)
