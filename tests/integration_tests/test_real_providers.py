"""`moa serve` with real `ChatOpenAI` models (not scripted ones) against an OpenAI-compatible streaming
upstream on localhost: where a provider's client, not our code, decides what happens."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from langchain_openai import ChatOpenAI

from langchain_moa import MoAChatModel
from tests.openai_endpoints import Endpoint, start_endpoint, wait_listening

MOA = str(Path(sys.executable).with_name("moa"))

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, upstream: Endpoint, proposers: int) -> Path:
    model = f"""provider = "openai"
model = "m"
base_url = "{upstream.url}"
api_key_env = "UPSTREAM_KEY"
streaming = true
max_retries = 0
"""
    path = tmp_path / "moa.toml"
    path.write_text("layers = 2\n" + "".join(f"[[proposers]]\n{model}\n" for _ in range(proposers))
                    + f"[aggregator]\n{model}")  # fmt: skip
    return path


@pytest.fixture(scope="module")
def upstream() -> Iterator[Endpoint]:
    endpoint = start_endpoint(" ".join(["word"] * 400), token_delay=0.01)
    yield endpoint
    endpoint.stop()


@pytest.fixture(scope="module")
def two_workers(
    upstream: Endpoint, tmp_path_factory: pytest.TempPathFactory, free_port: Callable[[], int]
) -> Iterator[str]:
    """`moa serve --workers 2` on a configuration file of three streaming ChatOpenAI proposers and a
    streaming ChatOpenAI aggregator, all on ``upstream``."""
    path = _config(tmp_path_factory.mktemp("config"), upstream, proposers=3)
    port = free_port()
    env = {**os.environ, "UPSTREAM_KEY": upstream.key}
    process = subprocess.Popen(
        [MOA, "serve", "--config", str(path), "--port", str(port), "--workers", "2", "--name", "moa"],
        env=env, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    wait_listening(port, process)
    yield f"http://127.0.0.1:{port}"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    process.communicate(timeout=30)


def test_a_disconnect_storm_leaves_no_provider_stream_running(two_workers: str, upstream: Endpoint) -> None:
    """200 streams dropped at different points (before the first token, among the proposers' and the
    aggregator's tokens), 20 at a time: 2 s after the last drop, no call upstream is still running."""
    statuses: list[int] = []

    async def drop(i: int, gate: asyncio.Semaphore) -> None:
        body = {"model": "moa", "messages": [{"role": "user", "content": f"Hi {i}"}], "stream": True}
        async with (
            gate,
            httpx.AsyncClient(base_url=two_workers, timeout=60) as http,
            http.stream("POST", "/v1/chat/completions", json=body) as response,
        ):
            statuses.append(response.status_code)
            lines = response.aiter_lines()
            for _ in range(i % 9):  # 0: leaves at once; up to 8 lines in
                await anext(lines)

    async def storm() -> None:
        gate = asyncio.Semaphore(20)
        await asyncio.gather(*(drop(i, gate) for i in range(200)))

    asyncio.run(storm())
    last_drop = time.monotonic()
    while upstream.tally.running and time.monotonic() - last_drop < 2:
        time.sleep(0.05)
    assert upstream.tally.running == 0, f"{upstream.tally.running} provider streams still running 2 s after"
    assert set(statuses) == {200}
    assert upstream.tally.cancelled > 0  # the drops did stop calls mid-stream


def test_streamed_calls_report_their_usage_and_the_answer_sums_them(
    upstream: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPSTREAM_KEY", upstream.key)
    moa = MoAChatModel.from_config(_config(tmp_path, upstream, proposers=3), max_tokens=8)
    assert all(isinstance(m, ChatOpenAI) and m.streaming for m in [*moa.proposers, moa.aggregator])
    answer = moa.invoke("Hi")
    record = answer.response_metadata["moa"]
    calls = [p["usage"] for p in record["layers"][0]] + [record["aggregator"]["usage"]]
    assert all(u and u["output_tokens"] == 8 for u in calls), calls  # each streamed call reported
    assert answer.usage_metadata is not None
    assert answer.usage_metadata["total_tokens"] == sum(u["total_tokens"] for u in calls)
    assert "usage_missing" not in record


def test_a_server_that_reports_no_usage_leaves_the_total_unknown(
    upstream: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPSTREAM_KEY", upstream.key)
    path = _config(tmp_path, upstream, proposers=2)
    path.write_text(path.read_text().replace("streaming = true", "streaming = true\nstream_usage = false", 1))
    moa = MoAChatModel.from_config(path, max_tokens=8)
    answer = moa.invoke("Hi")
    record = answer.response_metadata["moa"]
    assert record["usage_missing"] == [record["layers"][0][0]["node"]]
    assert answer.usage_metadata is None  # never a partial sum passed off as the total
