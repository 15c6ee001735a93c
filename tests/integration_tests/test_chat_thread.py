"""``moa chat --thread`` across processes: a conversation on disk survives a killed process."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.local_model, pytest.mark.slow]

MOA = str(Path(sys.executable).with_name("moa"))
ARGS = ["chat", "--preset", "local", "--reference-models", "local:qwen2.5-coder-0.5b", "--max-tokens", "16",
        "--temperature", "0", "--thread", "ada"]  # fmt: skip


def _chat(data: Path, text: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LANGCHAIN_MOA_DATA": str(data)}
    return subprocess.run([MOA, *ARGS], input=text, capture_output=True, text=True, env=env, timeout=300)


def test_a_thread_is_resumed_by_a_new_process_and_survives_a_kill(tmp_path: Path) -> None:
    first = _chat(tmp_path, "My name is Ada.\n")
    assert first.returncode == 0, first.stderr
    assert "Thread 'ada': 0 earlier messages" in first.stderr

    # A second process answers a turn and is killed without a chance to clean up.
    env = {**os.environ, "LANGCHAIN_MOA_DATA": str(tmp_path)}
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.DEVNULL}
    killed = subprocess.Popen([MOA, *ARGS], env=env, text=True, start_new_session=True, **pipes)
    assert killed.stdin is not None and killed.stdout is not None
    killed.stdin.write("What is my name?\n")
    killed.stdin.flush()
    # The second prompt appears once the answer is complete; then the process dies at once.
    seen, deadline = "", time.monotonic() + 120
    while seen.count(">>> ") < 2:
        assert time.monotonic() < deadline, f"no answer: {seen!r}"
        seen += os.read(killed.stdout.fileno(), 4096).decode()
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)

    third = _chat(tmp_path, "")
    assert "Thread 'ada': 4 earlier messages" in third.stderr
    with sqlite3.connect(tmp_path / "threads.sqlite") as db:
        assert db.execute("select count(distinct thread_id) from checkpoints").fetchone() == (1,)
