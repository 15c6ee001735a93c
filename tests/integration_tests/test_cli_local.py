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


class _Terminal:
    """The leader side of a pty, read up to one marker at a time: what came after a marker in the same
    read stays for the next wait (one read may carry both "(answer cancelled)" and the next prompt)."""

    def __init__(self, fd: int) -> None:
        self.fd, self.unread = fd, ""

    def read_until(self, marker: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while marker not in self.unread:
            left = deadline - time.monotonic()
            assert left > 0, f"no {marker!r} within {timeout}s; got: {self.unread[-500:]!r}"
            if select.select([self.fd], [], [], left)[0]:
                self.unread += os.read(self.fd, 4096).decode(errors="replace")
        end = self.unread.index(marker) + len(marker)
        seen, self.unread = self.unread[:end], self.unread[end:]
        return seen


def test_ctrl_c_cancels_the_answer_and_the_chat_goes_on(ctrl_c: None) -> None:
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [MOA, "chat", "--preset", "local", "--max-tokens", "400"],
        stdin=follower, stdout=follower, stderr=follower, start_new_session=True,
    )  # fmt: skip
    os.close(follower)
    terminal = _Terminal(leader)
    try:
        terminal.read_until(">>> ", timeout=120)
        os.write(leader, b"Write a long essay about the history of the Roman Empire.\n")
        terminal.read_until("waiting", timeout=60)  # the live view shows the proposers at work
        os.killpg(process.pid, signal.SIGINT)
        after = terminal.read_until("(answer cancelled)", timeout=30)
        after += terminal.read_until(">>> ", timeout=30)
        os.write(leader, b"exit\n")
        assert process.wait(timeout=30) == 0
        assert "Traceback" not in after
    finally:
        if process.poll() is None:
            process.kill()
        os.close(leader)
