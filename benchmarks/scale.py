"""Past one process, side by side in one run: `moa serve` with 1 and 2 workers against a bare FastAPI
app of the same shape, and the MoA graph on LangGraph's Agent Server (Postgres and Redis, 1 and 2
workers) against the same graph on `langgraph dev`.

    apt-get install wrk postgresql redis-server
    python3 -m venv .venv-cluster && .venv-cluster/bin/pip install -e ".[cluster]"
    python benchmarks/scale.py           # writes SCALE.md and scale-results.json beside this file

Scripted models answer at once everywhere, so what is measured is the servers and the engine.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import server
from langgraph_sdk import get_client
from run import table  # the reports' one Markdown table

HERE = Path(__file__).parent
ROOT = HERE.parent
SCRIPTED = HERE / "scripted" / "langgraph.json"  # 4 scripted proposers, 2 layers
CLUSTER_PYTHON = ROOT / ".venv-cluster" / "bin" / "python"
JOBS_PER_WORKER = 10  # runs one server process executes at once, the same everywhere
INPUT: dict[str, Any] = {"messages": [{"role": "user", "content": "Why is the sky blue?"}]}


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def moa_serve(seconds: int) -> list[dict[str, Any]]:
    """wrk against `moa serve`'s app and the echo app, with 1 and 2 uvicorn workers."""
    rows = []
    for workers in (1, 2):
        for kind in ("echo", "moa"):
            process, port = server.start(kind, workers)
            try:
                server.wrk(port, 10, 2)  # warm up every worker
                for clients in (50, 500):
                    level = server.wrk(port, clients, seconds)
                    rows.append({"app": kind, "workers": workers, "clients": clients, **level})
                    print(rows[-1], flush=True)
            finally:
                process.terminate()
                process.wait(timeout=30)
    return rows


async def _runs(urls: list[str], clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` conversations, spread over ``urls``: each waits for one run on its thread after another."""
    sdks = [get_client(url=url, timeout=120) for url in urls]
    latencies: list[float] = []
    errors: collections.Counter[str] = collections.Counter()
    stop = time.monotonic() + seconds

    async def loop(i: int) -> tuple[Any, str, int]:
        sdk = sdks[i % len(sdks)]
        thread = (await sdk.threads.create())["thread_id"]
        turns = 0
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                values = await sdk.runs.wait(thread, "moa", input=INPUT)
                turns += 1
                if not isinstance(values, dict) or len(values.get("messages", [])) != 2 * turns:
                    errors["runs.wait returned without the run's answer"] += 1
                    continue
                latencies.append(time.perf_counter() - started)
            except Exception as error:  # counted by kind, and the run goes on
                errors[f"{type(error).__name__}: {str(error)[:120]}"] += 1
        return sdk, thread, turns

    began = time.monotonic()
    conversations = await asyncio.gather(*(loop(i) for i in range(clients)))
    elapsed = time.monotonic() - began
    await asyncio.sleep(2)  # runs whose wait returned early may still be writing
    # Whatever a wait returned, each thread must hold every question and answer in the end.
    incomplete = sum([len((await sdk.threads.get_state(thread))["values"]["messages"]) != 2 * turns
                      for sdk, thread, turns in conversations])  # fmt: skip
    cut = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else [float("nan")] * 19
    return {"runs": len(latencies), "runs_per_s": len(latencies) / elapsed, "p50_ms": 1000 * statistics.median(latencies),
            "p95_ms": 1000 * cut[18], "errors": sum(errors.values()), "error_kinds": dict(errors),
            "threads": clients, "incomplete_threads": incomplete}  # fmt: skip


def agent_servers(seconds: float) -> list[dict[str, Any]]:
    rows = []

    def measure(setup: str, urls: list[str]) -> None:
        asyncio.run(_runs(urls, 4, 3))  # warm up: graphs built, connections open
        for clients in (10, 50):
            rows.append({"setup": setup, "clients": clients, **asyncio.run(_runs(urls, clients, seconds))})
            print(rows[-1], flush=True)

    port = server.free_port()
    dev = subprocess.Popen(
        [str(Path(sys.executable).with_name("langgraph")), "dev", "--config", str(SCRIPTED), "--port", str(port),
         "--no-browser", "--no-reload", "--n-jobs-per-worker", str(JOBS_PER_WORKER)],
        cwd=SCRIPTED.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        server.wait_listening(port, dev)
        measure("langgraph dev (in memory, 1 process)", [f"http://127.0.0.1:{port}"])
    finally:
        os.killpg(dev.pid, signal.SIGTERM)
        dev.wait(timeout=30)
    for workers in (1, 2):
        directory = Path(tempfile.mkdtemp(prefix="moa-scale-"))
        directory.chmod(0o755)  # under root, Postgres runs as the postgres user
        script = [str(CLUSTER_PYTHON), str(ROOT / "deploy" / "cluster.py")]
        first, pg, redis = server.free_port(), server.free_port(), server.free_port()
        subprocess.run([*script, "up", "--dir", str(directory), "--workers", str(workers), "--config", str(SCRIPTED),
                        "--port", str(first), "--pg-port", str(pg), "--redis-port", str(redis),
                        "--jobs-per-worker", str(JOBS_PER_WORKER)], check=True)  # fmt: skip
        try:
            state = json.loads((directory / "cluster.json").read_text())
            measure(f"Agent Server, Postgres + Redis, {workers} worker{'s' * (workers > 1)}",
                    [f"http://127.0.0.1:{p}" for p in state["worker_ports"]])  # fmt: skip
        finally:
            subprocess.run([*script, "down", "--dir", str(directory)], check=True)
            shutil.rmtree(directory, ignore_errors=True)
    return rows


def crash() -> str:
    """The crash test's own figures: it SIGKILLs a worker in the middle of runs (tests/integration_tests)."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/integration_tests/test_cluster.py", "-k", "killed", "-s", "-q",
         "-p", "no:randomly"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    line = next((line for line in done.stdout.splitlines() if line.startswith("crash: ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"the crash test failed:\n{done.stdout[-3000:]}")
    return line.removeprefix("crash: ")


def report(results: dict[str, Any]) -> str:
    serve_rows = [[r["app"], str(r["workers"]), str(r["clients"]), f"{r['rps']:.0f}", f"{r['p50_ms']:.1f}",
                   f"{r['p95_ms']:.1f}", str(r["errors"] + r["non2xx"])] for r in results["moa_serve"]]  # fmt: skip
    agent_rows = [[r["setup"], str(r["clients"]), f"{r['runs_per_s']:.1f}", f"{r['p50_ms']:.0f}",
                   f"{r['p95_ms']:.0f}", str(r["errors"]), f"{r['incomplete_threads']} of {r['threads']}"]
                  for r in results["agent_servers"]]  # fmt: skip
    return (
        f"# Past one process\n\nMeasured {results['date']} on {results['cores']} cores, side by side in one run "
        "of `python benchmarks/scale.py`. Scripted models answer at once: what is measured is the servers "
        "and the engine.\n\n"
        "## `moa serve --workers`\n\nwrk (keep-alive, "
        f"{results['seconds']} s per level) with one non-streamed chat request; `moa` is MoA on 2 scripted "
        "proposers and a scripted aggregator, `echo` a bare FastAPI app that reads the same body and returns a "
        "completion of the same shape, each with 1 and 2 uvicorn worker processes behind one port.\n\n"
        + table(["app", "workers", "clients", "requests/s", "p50 ms", "p95 ms", "errors"], serve_rows)
        + "\n\n## The MoA graph on an Agent Server\n\n4 scripted proposers, 2 layers and the aggregator "
        f"(`benchmarks/scripted/`); each client is a conversation on a thread of its own, one turn after another for {results['seconds']} s "
        '(`client.runs.wait(thread_id, "moa", ...)` from the official SDK, the answer checked; with 2 workers the clients alternate '
        "between the two ports, as behind a load balancer). `langgraph dev` is the in-memory development "
        "server; the Agent Server is `deploy/cluster.py` (GraphHarbor's Agent Server and queue worker, Postgres "
        f"and Redis on this machine). Each server process runs at most {JOBS_PER_WORKER} runs at once.\n\n"
        + table(
            [
                "server",
                "clients",
                "runs/s",
                "p50 ms",
                "p95 ms",
                "errors",
                "threads missing a message at the end",
            ],
            agent_rows,
        )
        + "".join(
            f"\n\nErrors of {r['setup']} at {r['clients']} clients: "
            + "; ".join(f"{count} x `{kind}`" for kind, count in r["error_kinds"].items())
            for r in results["agent_servers"]
            if r["errors"]
        )
        + "\n\n## A worker killed mid-run\n\n`test_a_worker_killed_mid_run_loses_and_duplicates_nothing`: "
        "two workers (5 runs at once each), ten threads with two runs each (the second enqueued behind the "
        "first), models on a simulated endpoint that stream for about a second per call; worker 1 gets "
        "SIGKILL while at least three runs are in flight on it. The engine gives a run whose lease its "
        "worker stopped renewing (5 s here) to the worker that is left. Figures of "
        f"this run: {results['crash']}.\n"
    )


def main() -> None:
    if not CLUSTER_PYTHON.exists():
        raise SystemExit(f'needs the cluster environment: python3 -m venv .venv-cluster && .venv-cluster/bin/pip '
                         f'install -e ".[cluster]" (no {CLUSTER_PYTHON})')  # fmt: skip
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    results = {"date": time.strftime("%Y-%m-%d"), "cores": _cores(), "seconds": seconds}
    results["moa_serve"] = moa_serve(seconds)
    results["agent_servers"] = agent_servers(seconds)
    results["crash"] = crash()
    (HERE / "scale-results.json").write_text(json.dumps(results, indent=1) + "\n")
    (HERE / "SCALE.md").write_text(report(results))
    print(f"wrote {HERE / 'SCALE.md'}")


if __name__ == "__main__":
    main()
