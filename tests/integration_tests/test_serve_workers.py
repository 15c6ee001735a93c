"""`moa serve --workers 2`: several processes behind one port, with the guarantees of one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.openai_endpoints import Endpoint, start_endpoint

MOA = str(Path(sys.executable).with_name("moa"))
KEY = "workers-test-key-0123456789"

pytestmark = pytest.mark.slow


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, config_file: Callable[..., Path], free_port: Callable[[], int]
) -> Iterator[tuple[str, Endpoint, subprocess.Popen[str]]]:
    endpoint = start_endpoint(" ".join(["word"] * 200), token_delay=0.02)
    path = config_file(tmp_path_factory.mktemp("config"), endpoint.url, endpoint.url)
    port = free_port()
    env = {**os.environ, "KEY_A": endpoint.key, "KEY_B": endpoint.key, "MOA_SERVE_API_KEY": KEY}
    process = subprocess.Popen(
        [MOA, "serve", "--config", str(path), "--port", str(port), "--workers", "2", "--name", "moa"],
        env=env, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert process.poll() is None and time.monotonic() < deadline, "moa serve --workers 2 did not start"
        time.sleep(0.2)
    yield f"http://127.0.0.1:{port}", endpoint, process
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)
    endpoint.stop()


def test_two_worker_processes_answer_concurrent_requests(
    served: tuple[str, Endpoint, subprocess.Popen[str]],
) -> None:
    url, _, process = served
    assert len(_children(process.pid)) >= 2

    async def ask(i: int) -> str:
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
        reply = await client.chat.completions.create(model="moa", messages=[{"role": "user", "content": f"q{i}"}],
                                                     max_tokens=8)  # fmt: skip
        return reply.choices[0].message.content or ""

    async def all_of_them() -> list[str]:
        return await asyncio.gather(*(ask(i) for i in range(12)))

    assert asyncio.run(all_of_them()) == ["word word word word word word word word"] * 12


def test_a_client_leaving_a_worker_still_cancels_its_run(
    served: tuple[str, Endpoint, subprocess.Popen[str]],
) -> None:
    url, endpoint, _ = served
    before = endpoint.tally.cancelled
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}) as http:
        body = {
            "model": "moa",
            "messages": [{"role": "user", "content": "Hi"}],
            "stream": True,
            "max_tokens": 200,
        }
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            lines = response.iter_lines()
            for _ in range(3):
                next(lines)  # the aggregator is streaming; now the client leaves
    deadline = time.monotonic() + 20
    while endpoint.tally.cancelled == before or endpoint.tally.running:
        assert time.monotonic() < deadline, "the worker's run went on after its client left"
        time.sleep(0.05)


def test_the_key_is_in_no_log(served: tuple[str, Endpoint, subprocess.Popen[str]]) -> None:
    url, endpoint, process = served
    httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
               json={"model": "moa", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})  # fmt: skip
    os.killpg(process.pid, signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert "POST /v1/chat/completions" in err  # the request lines are there
    assert KEY not in err and endpoint.key not in err
