"""``moa`` in a real terminal (a pseudo-terminal of a set width), its models real ChatOpenAI clients
of an OpenAI-compatible server on localhost: what a new user sees, not what a pipe receives."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pyte
import pytest

from tests.openai_endpoints import Endpoint, start_endpoint

pytestmark = pytest.mark.slow

MOA = str(Path(sys.executable).with_name("moa"))
ANSWER = (
    "The sky looks blue because air molecules scatter short blue wavelengths of sunlight far more than "
    "long red ones, so blue light reaches the eye from every direction of the sky, while at sunset the "
    "light crosses more air, the blue is scattered away, and the reds and oranges remain over the seas, "
    "and that is the end of this answer."
)
ROWS = 200  # taller than anything shown here: the screen holds the whole output


@pytest.fixture(scope="module")
def upstream() -> Iterator[Endpoint]:
    endpoint = start_endpoint(ANSWER)
    yield endpoint
    endpoint.stop()


def _run_in_terminal(args: list[str], columns: int, env: dict[str, str]) -> str:
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, columns, 0, 0))
    process = subprocess.Popen(
        [MOA, *args], stdin=follower, stdout=follower, stderr=follower, start_new_session=True,
        env={**env, "TERM": "xterm-256color", "COLUMNS": str(columns)},
    )  # fmt: skip
    os.close(follower)
    seen, deadline = b"", time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if select.select([leader], [], [], 0.5)[0]:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # the terminal closed: the program has exited
                    break
                if not data:
                    break
                seen += data
            elif process.poll() is not None:
                break
        assert process.wait(timeout=30) == 0, seen.decode(errors="replace")[-2000:]
    finally:
        if process.poll() is None:
            process.kill()
        os.close(leader)
    # What a person sees: the bytes played on a terminal emulator of the same size.
    screen = pyte.Screen(columns, ROWS)
    pyte.ByteStream(screen).feed(seen)
    return "\n".join(line.rstrip() for line in screen.display).strip()


@pytest.mark.parametrize("columns", [60, 120])
def test_every_word_of_the_answer_reaches_the_terminal(
    upstream: Endpoint, tmp_path: Path, columns: int
) -> None:
    model = f'provider = "openai"\nmodel = "m"\nbase_url = "{upstream.url}"\napi_key_env = "UPSTREAM_KEY"\n'
    config = tmp_path / "moa.toml"
    config.write_text(f"layers = 2\n[[proposers]]\n{model}\n[[proposers]]\n{model}\n[aggregator]\n{model}")
    shown = _run_in_terminal(["--config", str(config), "Why is the sky blue?"], columns,
                             {**os.environ, "UPSTREAM_KEY": upstream.key})  # fmt: skip
    # Every word of the answer on the screen, in order, whatever the line breaks.
    assert " ".join(ANSWER.split()) in " ".join(shown.split()), shown
