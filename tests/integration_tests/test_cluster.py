"""The MoA graph on an Agent Server cluster: Postgres, Redis and two workers (``deploy/cluster.py``).

The cluster runs in its own environment (``.venv-cluster``, ``pip install -e ".[cluster]"``, built here
when missing): the open Postgres runtime pins LangGraph's server to a release older than the one
``langgraph dev`` uses in the test environment, and one environment cannot hold both.

The models are a simulated OpenAI-compatible endpoint on localhost, named in a MoA configuration file
that the cluster's operator gives every worker (``MOA_CONFIG``): a path no request can set.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client

from tests.openai_endpoints import Endpoint, start_endpoint

# The first test builds .venv-cluster when it is missing: minutes, on a new machine.
pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "cluster.py"
CLUSTER_VENV = ROOT / ".venv-cluster"
LEASE = 5  # a killed worker's runs go to the other at most 5 s after it last renewed them
JOBS_PER_WORKER = 5  # ten runs at once fill both workers


def _cluster_python() -> str:
    python = CLUSTER_VENV / "bin" / "python"
    if not (CLUSTER_VENV / "bin" / "graphharbor").exists():
        subprocess.run([sys.executable, "-m", "venv", str(CLUSTER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", f"{ROOT}[cluster]"], check=True)
    return str(python)


def _free_ports(count: int) -> list[int]:
    """``count`` free loopback ports; the workers' two are consecutive, as the script numbers them."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            first = s.getsockname()[1]
        ports = list(range(first, first + count))
        if ports[-1] < 65536 and not any(_taken(p) for p in ports):
            return ports


def _taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _cluster(python: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=300)


class Cluster:
    def __init__(self, python: str, directory: Path, moa_config: Path, env: dict[str, str]) -> None:
        self.python, self.dir, self.moa_config, self.env = python, directory, moa_config, env
        self.pg_port, self.redis_port, self.port, _ = _free_ports(4)

    def up(self) -> None:
        for _ in range(3):  # a busy machine may take a port between choosing it and binding it
            done = _cluster(self.python, "up", "--dir", str(self.dir), "--port", str(self.port),
                            "--pg-port", str(self.pg_port), "--redis-port", str(self.redis_port),
                            "--moa-config", str(self.moa_config), "--lease", str(LEASE),
                            "--jobs-per-worker", str(JOBS_PER_WORKER), env=self.env)  # fmt: skip
            if done.returncode == 0:
                break
            self.pg_port, self.redis_port, self.port, _ = _free_ports(4)  # `up` stopped what it started
        assert done.returncode == 0, done.stderr

    def down(self) -> None:
        done = _cluster(self.python, "down", "--dir", str(self.dir))
        assert done.returncode == 0, done.stderr

    @property
    def state(self) -> dict[str, Any]:
        return json.loads((self.dir / "cluster.json").read_text())

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.state["worker_ports"]]

    def queue_pid(self, worker: int) -> int:
        """The pid of worker ``worker``'s (1 or 2) queue process: the child of its API server."""
        leader = self.state["worker_pids"][worker - 1]
        children = Path(f"/proc/{leader}/task/{leader}/children").read_text().split()
        assert len(children) == 1, children
        return int(children[0])

    def leases(self) -> dict[str, tuple[str, int | None]]:
        """Each run's status and the pid of the queue process that holds it (Postgres' ``runs``)."""
        query = "select run_id, status, coalesce(lease_owner, '') from runs"
        done = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "moa", "-d", "moa",
                               "-AtF", "|", "-c", query], capture_output=True, text=True, timeout=30)  # fmt: skip
        assert done.returncode == 0, done.stderr
        rows = (line.split("|") for line in done.stdout.splitlines())
        # An owner is "<host>:<pid>" and, for one of its slots, ":slot-<n>" after it.
        return {run: (status, int(owner.split(":")[1]) if owner else None) for run, status, owner in rows}


class LeaseWatcher:
    """Which queue processes held each run, in order, sampled from Postgres every 50 ms."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster, self.held = cluster, defaultdict[str, list[int]](list)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            for run, (_, owner) in self.cluster.leases().items():
                if owner is not None and (not self.held[run] or self.held[run][-1] != owner):
                    self.held[run].append(owner)

    def running_on(self, pid: int) -> set[str]:
        return {
            run
            for run, (status, owner) in self.cluster.leases().items()
            if owner == pid and status == "running"
        }

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Endpoint]:
    # Each call streams 30 words 0.03 s apart: a run (two layers, then the aggregator) takes ~3 s.
    endpoint = start_endpoint(" ".join(["word"] * 30), token_delay=0.03)
    yield endpoint
    endpoint.stop()


def _require_postgres_and_redis() -> None:
    """Skip (one line naming the packages) on a machine without them; CI, which installs them, sets
    MOA_REQUIRE_CLUSTER=1 to make that a failure, so that it always proves the cluster."""
    if shutil.which("redis-server") and glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        return
    reason = "the cluster tests need Postgres and Redis: apt-get install postgresql redis-server"
    if os.environ.get("MOA_REQUIRE_CLUSTER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def cluster(endpoint: Endpoint) -> Iterator[Cluster]:
    _require_postgres_and_redis()
    python = _cluster_python()
    directory = Path(tempfile.mkdtemp(prefix="moa-cluster-"))
    try:  # the data directory goes, however the cluster ended (46 MB of Postgres a run otherwise)
        directory.chmod(0o755)  # under root, Postgres runs as the postgres user, who must reach its folder
        model = f'provider = "openai"\nmodel = "m"\nbase_url = "{endpoint.url}"\napi_key_env = "SIM_KEY"\nstreaming = true\n'
        moa_config = directory / "moa.toml"
        proposers = "".join(f"[[proposers]]\n{model}\n" for _ in range(4))
        moa_config.write_text(f"layers = 2\nmax_tokens = 64\n\n{proposers}[aggregator]\n{model}")
        cluster = Cluster(python, directory / "cluster", moa_config, {**os.environ, "SIM_KEY": endpoint.key})
        try:
            cluster.up()
            yield cluster
        finally:
            cluster.down()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _question(thread: int, turn: int) -> str:
    return f"thread {thread} turn {turn}: what is MoA?"


async def _twenty_runs(urls: list[str]) -> tuple[list[str], list[Any]]:
    """Ten threads, two runs each, all at once; each thread's second run waits for its first."""
    clients = [get_client(url=url) for url in urls]
    threads = [await clients[i % len(clients)].threads.create() for i in range(10)]
    runs = []
    for turn in (1, 2):
        for i, thread in enumerate(threads):
            client = clients[(i + turn) % len(clients)]  # every worker takes requests
            question: dict[str, Any] = {"messages": [{"role": "user", "content": _question(i, turn)}]}
            runs.append(await client.runs.create(thread["thread_id"], "moa", input=question,
                                                 multitask_strategy="enqueue"))  # fmt: skip
    return [t["thread_id"] for t in threads], runs


async def _finish(url: str, runs: list[Any], timeout: float = 120) -> list[str]:
    client = get_client(url=url)
    deadline = time.monotonic() + timeout
    while True:
        statuses: list[str] = [(await client.runs.get(r["thread_id"], r["run_id"]))["status"] for r in runs]
        if all(s not in ("pending", "running") for s in statuses) or time.monotonic() > deadline:
            return statuses
        await asyncio.sleep(0.5)


async def _histories(url: str, threads: list[str]) -> list[list[tuple[str, str]]]:
    client = get_client(url=url)
    histories = []
    for thread in threads:
        values = (await client.threads.get_state(thread))["values"]
        assert isinstance(values, dict), values
        messages = values["messages"]
        histories.append([(m["type"], m["content"] if m["type"] == "human" else "") for m in messages])
    return histories


def _expected(i: int) -> list[tuple[str, str]]:
    return [("human", _question(i, 1)), ("ai", ""), ("human", _question(i, 2)), ("ai", "")]


def _lost_and_duplicated(histories: list[list[tuple[str, str]]]) -> tuple[int, int]:
    """Messages missing from, and messages beyond, each thread's two questions with one answer each."""
    lost = duplicated = 0
    for i, history in enumerate(histories):
        for expected in set(_expected(i)):
            want, have = _expected(i).count(expected), history.count(expected)
            lost += max(0, want - have)
            duplicated += max(0, have - want)
        duplicated += len([m for m in history if m not in _expected(i)])
    return lost, duplicated


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_twenty_runs_on_ten_threads_spread_over_two_workers(cluster: Cluster) -> None:
    pids = [cluster.queue_pid(1), cluster.queue_pid(2)]
    watcher = LeaseWatcher(cluster)
    try:
        threads, runs = asyncio.run(_twenty_runs(cluster.urls))
        statuses = asyncio.run(_finish(cluster.urls[0], runs))
    finally:
        watcher.stop()
    assert statuses == ["success"] * 20
    assert asyncio.run(_histories(cluster.urls[1], threads)) == [_expected(i) for i in range(10)]
    ours = {r["run_id"] for r in runs}
    by_worker = [{run for run in ours if pid in watcher.held[run]} for pid in pids]
    assert by_worker[0] and by_worker[1], f"one worker ran everything: {[len(b) for b in by_worker]}"
    assert by_worker[0] | by_worker[1] == ours
    status = json.loads(_cluster(cluster.python, "status", "--dir", str(cluster.dir)).stdout)
    assert (status["urls"], status["worker_pids"]) == (cluster.urls, cluster.state["worker_pids"])
    assert [w["running"] for w in status["workers"]] == [True, True]
    key = cluster.env["SIM_KEY"]  # the models' key reached the workers, and no log holds it
    assert not [
        log.name for log in (cluster.dir / "logs").iterdir() if key in log.read_text(errors="replace")
    ]


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(cluster: Cluster) -> None:
    killed, survivor = cluster.queue_pid(1), cluster.queue_pid(2)
    watcher = LeaseWatcher(cluster)
    try:
        threads, runs = asyncio.run(_twenty_runs(cluster.urls))
        ours = {r["run_id"] for r in runs}
        deadline = time.monotonic() + 30
        while len(watcher.running_on(killed) & ours) < 3:  # worker 1 is in the middle of several runs
            assert time.monotonic() < deadline, "worker 1 never ran three of the runs at once"
            time.sleep(0.05)
        os.killpg(cluster.state["worker_pids"][0], signal.SIGKILL)
        in_flight = watcher.running_on(killed) & ours
        status = json.loads(_cluster(cluster.python, "status", "--dir", str(cluster.dir)).stdout)
        assert [w["running"] for w in status["workers"]] == [False, True]  # the dead worker is said to be so
        statuses = asyncio.run(_finish(cluster.urls[1], runs))
    finally:
        watcher.stop()
    # Retried: held by the killed worker's queue, then by the survivor's.
    retried = {run for run in ours if watcher.held[run][:1] == [killed] and survivor in watcher.held[run]}
    histories = asyncio.run(_histories(cluster.urls[1], threads))
    lost, duplicated = _lost_and_duplicated(histories)
    print(f"\ncrash: runs started 20, in flight on the killed worker {len(in_flight)}, retried {len(retried)}, "
          f"finished {statuses.count('success')}, failed {20 - statuses.count('success')}, "
          f"messages lost {lost}, duplicated {duplicated}")  # fmt: skip
    assert statuses == ["success"] * 20
    assert retried, "no run of the killed worker was retried"
    assert retried == in_flight
    assert (lost, duplicated) == (0, 0)
    assert histories == [_expected(i) for i in range(10)]

    # A full restart of both workers, Redis and the database: every thread's history is still there.
    postgres = int((cluster.dir / "postgres" / "postmaster.pid").read_text().split()[0])
    redis = int((cluster.dir / "redis" / "redis.pid").read_text())
    processes = [*cluster.state["worker_pids"], redis, postgres]
    cluster.down()
    assert not [pid for pid in processes if _alive(pid)], "down left processes running"
    assert not any(_taken(p) for p in (cluster.pg_port, cluster.redis_port, cluster.port, cluster.port + 1))
    cluster.up()
    assert asyncio.run(_histories(cluster.urls[0], threads)) == [_expected(i) for i in range(10)]


def test_up_refuses_a_taken_port_naming_it_and_leaves_nothing_behind(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    pg, worker = free_port(), free_port()
    with socket.socket() as taken:  # a port the system gives is one it can bind: no race with others
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        redis = taken.getsockname()[1]
        done = _cluster(sys.executable, "up", "--dir", str(tmp_path / "c"), "--pg-port", str(pg),
                        "--redis-port", str(redis), "--port", str(worker))  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == f"cluster: error: port {redis} for Redis (--redis-port) is taken: choose another\n"
    assert not (tmp_path / "c" / "cluster.json").exists()
    assert not _taken(pg)


@pytest.mark.parametrize("unreachable", ["Postgres", "Redis"])
def test_a_worker_that_cannot_reach_postgres_or_redis_says_so_and_exits_non_zero(
    unreachable: str, free_port: Callable[[], int]
) -> None:
    closed = free_port()  # nothing listens there
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        listening = other.getsockname()[1]
        pg, redis = (closed, listening) if unreachable == "Postgres" else (listening, closed)
        done = _cluster(sys.executable, "worker", "--database-uri", f"postgresql://moa@127.0.0.1:{pg}/moa",
                        "--redis-uri", f"redis://127.0.0.1:{redis}/0")  # fmt: skip
    variable = {"Postgres": "DATABASE_URI", "Redis": "REDIS_URI"}[unreachable]
    assert done.returncode == 1
    assert done.stderr == (
        f"cluster: error: cannot reach {unreachable} at 127.0.0.1:{closed} ({variable}): Connection refused\n"
    )
