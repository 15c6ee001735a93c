"""`moa serve`'s own cost, side by side with a bare FastAPI app of the same shape, in one run.

    apt-get install wrk                  # the load tool (C, so the clients take little of the CPU)
    python benchmarks/server.py          # the figures as JSON (benchmarks/run.py puts them in RESULTS.md)

- Requests per second and p50/p95 latency at 1, 50 and 500 concurrent clients (wrk, keep-alive, 10 s
  per level), against MoA (2 scripted proposers and a scripted aggregator that answer at once: what is
  measured is the server and the engine) and against a bare FastAPI echo that reads the same JSON body
  and returns a completion of the same shape. One uvicorn worker each, the same settings.
- The MoA server's memory (RSS) before and after at least 20,000 requests.
- Model calls left running after 200 clients leave mid-stream (must be 0).
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request  # at module level: FastAPI resolves the endpoint's annotations here
from fastapi.responses import JSONResponse

BODY = {"model": "moa", "messages": [{"role": "user", "content": "Why is the sky blue?"}], "max_tokens": 16}
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '%s'
done = function(summary, latency, requests)
  io.write(string.format('{"requests": %%d, "seconds": %%f, "errors": %%d, "non2xx": %%d, "p50_ms": %%f, "p95_ms": %%f}\\n',
    summary.requests, summary.duration / 1e6, summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, summary.errors.status, latency:percentile(50) / 1e3, latency:percentile(95) / 1e3))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[Any] | None = None, timeout: float = 120) -> None:
    """Until something listens on ``port`` (uvicorn opens it once its app has started), or ``process``,
    the server, exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"the server on port {port} exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing listened on port {port} within {timeout:g} s")


def moa_app() -> Any:
    from langchain_moa import MoAChatModel
    from langchain_moa.fakes import ScriptedChatModel
    from langchain_moa.server.app import create_app
    from langchain_moa.server.registry import ModelRegistry

    moa = MoAChatModel(
        proposers=[ScriptedChatModel(answer="Rayleigh scattering of sunlight.") for _ in range(2)],
        aggregator=ScriptedChatModel(answer="Because air scatters blue light the most."),
    )
    return create_app(ModelRegistry({"moa": lambda: moa}))


def echo_app() -> Any:
    """A bare FastAPI app of the same shape: reads the JSON body, returns a chat.completion."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        message = {"role": "assistant", "content": "Because air scatters blue light the most."}
        return JSONResponse({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 8, "total_tokens": 13},
        })  # fmt: skip

    return app


def serve(kind: str, port: int, workers: int = 1) -> None:
    import uvicorn

    # An import string, as `moa serve --workers` gives uvicorn: each worker process builds its own app.
    uvicorn.run(f"server:{kind}_app", factory=True, app_dir=str(Path(__file__).parent), host="127.0.0.1",
                port=port, workers=workers, log_level="warning")  # fmt: skip


def start(kind: str, workers: int = 1) -> tuple[subprocess.Popen[bytes], int]:
    """A server of ``kind`` (``moa`` or ``echo``) with ``workers`` processes, once it listens: (process, port)."""
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "serve", kind, str(port), str(workers)])
    wait_listening(port, server)
    return server, port


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wrk(port: int, clients: int, seconds: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % json.dumps(BODY))
    threads = min(2, clients)
    done = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{clients}", f"-d{seconds}s", "--timeout", "30s", "-s", script.name,
         f"http://127.0.0.1:{port}/v1/chat/completions"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    Path(script.name).unlink()
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["rps"] = result["requests"] / result["seconds"]
    return result


def load(seconds: int, requests_for_memory: int = 20_000) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for kind in ("echo", "moa"):
        server, port = start(kind)
        try:
            wrk(port, 10, 2)  # warm up
            before = _rss_mib(server.pid)
            levels = {clients: wrk(port, clients, seconds) for clients in (1, 50, 500)}
            served = sum(level["requests"] for level in levels.values())
            while served < requests_for_memory:  # memory is read after at least this many requests
                served += wrk(port, 50, 5)["requests"]
            results[kind] = {"levels": levels, "rss_before_mib": before, "rss_after_mib": _rss_mib(server.pid),
                             "requests_served": served}  # fmt: skip
        finally:
            server.terminate()
            server.wait(timeout=20)
        print(kind, json.dumps(results[kind]), flush=True)
    return results


async def drops(clients: int = 200) -> dict[str, int]:
    """Model calls still running after ``clients`` leave a streamed answer a few tokens in."""
    import httpx
    import uvicorn

    from langchain_moa import MoAChatModel
    from langchain_moa.fakes import CallTally, ScriptedChatModel
    from langchain_moa.server.app import create_app
    from langchain_moa.server.registry import ModelRegistry

    tally = CallTally()
    moa = MoAChatModel(
        proposers=[ScriptedChatModel(answer="idea", tally=tally) for _ in range(2)],
        aggregator=ScriptedChatModel(answer=" ".join(["word"] * 400), token_delay=0.02, tally=tally),
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ModelRegistry({"moa": lambda: moa})), host="127.0.0.1",
                                           port=port, log_level="warning"))  # fmt: skip
    threading.Thread(target=server.run, daemon=True).start()
    wait_listening(port)

    async def drop() -> None:
        limits = httpx.Limits(max_connections=clients)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60) as http:
            body = {**BODY, "stream": True, "max_tokens": 400}
            async with http.stream("POST", "/v1/chat/completions", json=body) as response:
                lines = response.aiter_lines()
                for _ in range(4):
                    await anext(lines)

    await asyncio.gather(*(drop() for _ in range(clients)))
    await asyncio.sleep(3)
    server.should_exit = True
    return {"clients": clients, "calls_started": tally.finished + tally.cancelled + tally.running,
            "cancelled": tally.cancelled, "still_running": tally.running}  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    results = {"load": load(seconds=10), "drops": asyncio.run(drops())}
    print(json.dumps(results["drops"]))
    Path(__file__).with_name("server-results.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
