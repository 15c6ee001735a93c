"""A local Agent Server cluster for the MoA graph: Postgres, Redis and N server workers.

    python deploy/cluster.py up      # Postgres, Redis, two workers on ports 8123 and 8124
    python deploy/cluster.py status
    python deploy/cluster.py down    # stops everything it started; the data stays in .cluster/

The workers are GraphHarbor's Agent Server (the Agent Server API LangGraph's SDK and Studio speak) on its
open Postgres and Redis runtime, started with its ``graphharbor`` command
(``pip install "langchain-moa[cluster]"``).
They serve this repository's ``langgraph.json``; the Postgres run queue hands each run to whichever
worker is free, so a client may talk to any of them (or to a load balancer in front).

Postgres and Redis are the operating system's (Debian: ``apt-get install postgresql redis-server``),
run as processes of this cluster on loopback ports, never as system services. Postgres refuses to run
as root, so under root it runs as the ``postgres`` user the package creates.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATE = "cluster.json"
READY_TIMEOUT = 90.0


class ClusterError(Exception):
    """A reason the cluster cannot start or stop, said in one line."""


@dataclass
class Cluster:
    """What ``up`` started, kept in ``<dir>/cluster.json`` for ``status`` and ``down``."""

    dir: str
    pg_port: int
    redis_port: int
    worker_ports: list[int]
    worker_pids: list[int] = field(default_factory=list)

    @property
    def database_uri(self) -> str:
        return f"postgresql://moa@127.0.0.1:{self.pg_port}/moa"

    @property
    def redis_uri(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.worker_ports]

    def save(self) -> None:
        (Path(self.dir) / STATE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, directory: Path) -> Cluster | None:
        path = directory / STATE
        return cls(**json.loads(path.read_text())) if path.exists() else None


def _port_is_taken(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _postgres_program(name: str) -> str:
    debian = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)  # not on PATH there
    found = shutil.which(name) or next(iter(debian), None)
    if not found:
        raise ClusterError(f"{name} (Postgres) is not installed: apt-get install postgresql")
    return found


def _program(name: str, install: str) -> str:
    here = Path(sys.executable).with_name(name)  # the virtual environment's own, first
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise ClusterError(f"{name} is not installed: {install}")
    return found


def _as_postgres_user() -> list[str]:
    """Postgres will not run as root; under root, run its programs as the ``postgres`` user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ClusterError("running as root needs the 'postgres' user: apt-get install postgresql") from None
    return ["runuser", "-u", "postgres", "--"]


def _run(command: list[str], what: str, log: Path | None = None, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        where = f" (see {log})" if log else ""
        reason = detail[-1] if detail else f"exit {done.returncode}"
        raise ClusterError(f"{what} failed: {reason}{where}")


def _start_postgres(cluster: Cluster, logs: Path) -> None:
    data = Path(cluster.dir) / "postgres"
    sudo = _as_postgres_user()
    fresh = not (data / "PG_VERSION").exists()
    if fresh:
        data.mkdir(parents=True, exist_ok=True)
        if sudo:
            shutil.chown(data, "postgres", "postgres")
        _run([*sudo, _postgres_program("initdb"), "-D", str(data), "-U", "moa", "-A", "trust", "-E", "UTF8",
              "--no-instructions"], "initdb")  # fmt: skip
    log = logs / "postgres.log"
    if sudo:
        log.touch()
        shutil.chown(log, "postgres", "postgres")
    # Loopback TCP only: no Unix socket directory to own, nothing reachable from outside.
    options = f"-p {cluster.pg_port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
    _run([*sudo, _postgres_program("pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"],
         "starting Postgres", log)  # fmt: skip
    if fresh:
        createdb = _postgres_program("createdb")
        _run([createdb, "-h", "127.0.0.1", "-p", str(cluster.pg_port), "-U", "moa", "moa"], "createdb")


def _start_redis(cluster: Cluster, logs: Path) -> None:
    data = Path(cluster.dir) / "redis"
    data.mkdir(exist_ok=True)
    # Redis carries streams and wake-ups between workers; what must last (runs, leases) is in Postgres.
    _run([_program("redis-server", "apt-get install redis-server"), "--port", str(cluster.redis_port),
          "--bind", "127.0.0.1", "--daemonize", "yes", "--dir", str(data), "--save", "",
          "--pidfile", str(data / "redis.pid"), "--logfile", str(logs / "redis.log")],
         "starting Redis", logs / "redis.log")  # fmt: skip
    deadline = time.monotonic() + 10
    while not _port_is_taken(cluster.redis_port):
        if time.monotonic() > deadline:
            raise ClusterError(f"Redis did not open port {cluster.redis_port} (see {logs / 'redis.log'})")
        time.sleep(0.1)


def _migrate(cluster: Cluster) -> None:
    """The runtime's database schema, applied once before any worker starts (a worker refuses to start
    without it, and several starting at once must not race to apply it)."""
    server = _program("graphharbor", 'pip install "langchain-moa[cluster]"')
    env = dict(os.environ) | {"DATABASE_URI": cluster.database_uri, "REDIS_URI": cluster.redis_uri}
    _run([server, "migrate", "upgrade"], "the database migrations (graphharbor migrate upgrade)", env=env)


def _reachable(uri: str, what: str, variable: str) -> None:
    """Fail in one line when the database or Redis does not take a connection."""
    parts = urllib.parse.urlsplit(uri)
    host, port = parts.hostname or "localhost", parts.port or {"redis": 6379}.get(parts.scheme, 5432)
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as error:
        reason = error.strerror or error
        raise ClusterError(f"cannot reach {what} at {host}:{port} ({variable}): {reason}") from None


def worker(args: argparse.Namespace) -> None:
    """Run one Agent Server worker in this process (``exec``), once Postgres and Redis answer."""
    database_uri = args.database_uri or os.environ.get("DATABASE_URI")
    redis_uri = args.redis_uri or os.environ.get("REDIS_URI")
    if not database_uri or not redis_uri:
        raise ClusterError("a worker needs DATABASE_URI and REDIS_URI (or --database-uri and --redis-uri)")
    _reachable(database_uri, "Postgres", "DATABASE_URI")
    _reachable(redis_uri, "Redis", "REDIS_URI")
    server = _program("graphharbor", 'pip install "langchain-moa[cluster]"')
    config = Path(args.config).resolve()
    os.chdir(config.parent)  # the graphs' paths in langgraph.json are relative to it
    os.environ.setdefault("LOG_JSON", "true")  # one JSON object per log line, for any log shipper
    uris = ["--database-uri", database_uri, "--redis-uri", redis_uri]
    # The queue worker executes runs; the API server beside it takes requests. Both are this worker:
    # the queue worker is a child in its process group, so a worker killed or stopped stops both.
    subprocess.Popen([server, "worker", "--config", str(config), *uris], stdin=subprocess.DEVNULL)
    serve = ["serve", "--host", args.host, "--port", str(args.port), "--config", str(config)]
    os.execv(server, [server, *serve, *uris])


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _answers(url: str) -> bool:
    """Whether the worker at ``url`` answers its health check."""
    with (
        contextlib.suppress(urllib.error.URLError, OSError),
        urllib.request.urlopen(f"{url}/ok", timeout=2) as reply,
    ):
        return bool(reply.status == 200)
    return False


def start_worker(cluster: Cluster, index: int, config: Path, env: dict[str, str]) -> int:
    """Start worker ``index`` (on ``cluster.worker_ports[index]``) and wait until it answers."""
    port = cluster.worker_ports[index]
    log = Path(cluster.dir) / "logs" / f"worker-{index + 1}.log"
    process = subprocess.Popen(
        [sys.executable, __file__, "worker", "--port", str(port), "--config", str(config)],
        env=env | {"DATABASE_URI": cluster.database_uri, "REDIS_URI": cluster.redis_uri},
        stdin=subprocess.DEVNULL, stdout=log.open("a"), stderr=subprocess.STDOUT,
        start_new_session=True,  # a worker outlives this command, and `down` stops its whole group
    )  # fmt: skip
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if process.poll() is not None:
            raise ClusterError(f"worker {index + 1} exited with {process.returncode} (see {log})")
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ok", timeout=2) as reply,
        ):
            if reply.status == 200:
                return process.pid
        if time.monotonic() > deadline:
            _stop_group(process.pid)
            waited = f"{READY_TIMEOUT:.0f} s"
            raise ClusterError(f"worker {index + 1} did not answer on port {port} in {waited} (see {log})")
        time.sleep(0.3)


def up(args: argparse.Namespace) -> Cluster:
    directory = Path(args.dir).resolve()
    if (running := Cluster.load(directory)) is not None:
        ports = running.worker_ports
        raise ClusterError(f"a cluster of {directory} is already up (workers on {ports}): run `down` first")
    cluster = Cluster(
        dir=str(directory), pg_port=args.pg_port, redis_port=args.redis_port,
        worker_ports=[args.port + i for i in range(args.workers)],
    )  # fmt: skip
    named = {cluster.pg_port: "Postgres (--pg-port)", cluster.redis_port: "Redis (--redis-port)"}
    named |= {port: f"worker {i + 1} (--port)" for i, port in enumerate(cluster.worker_ports)}
    if len(named) < 2 + args.workers:
        raise ClusterError("Postgres, Redis and the workers need different ports")
    for port, what in named.items():
        if _port_is_taken(port):
            raise ClusterError(f"port {port} for {what} is taken: choose another")
    config = Path(args.config).resolve()
    if not config.is_file():
        raise ClusterError(f"no LangGraph configuration at {config}")
    env = dict(os.environ)
    if args.moa_config:
        env["MOA_CONFIG"] = str(Path(args.moa_config).resolve())
    env["N_JOBS_PER_WORKER"] = str(args.jobs_per_worker)
    if args.lease:
        env["GRAPHHARBOR_LEASE_SECONDS"] = str(args.lease)
    logs = directory / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if sudo := _as_postgres_user():
        shutil.chown(directory, "postgres", "postgres")  # the postgres user must reach its data folder
        if subprocess.run([*sudo, "test", "-w", str(directory)]).returncode != 0:
            raise ClusterError(f"the postgres user cannot reach {directory}: as root, choose a --dir whose "
                               "parent folders others may enter (chmod o+x)")  # fmt: skip
    cluster.save()  # from here on, `down` can stop whatever has started
    try:
        _start_postgres(cluster, logs)
        _start_redis(cluster, logs)
        _migrate(cluster)
        for index in range(args.workers):
            cluster.worker_pids.append(start_worker(cluster, index, config, env))
            cluster.save()
    except BaseException:
        down(directory)
        raise
    return cluster


def _stop_group(pid: int, grace: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            os.killpg(pid, 0)  # raises ProcessLookupError once the group is gone
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)


def down(directory: Path) -> None:
    """Stop every worker, Redis and Postgres of the cluster in ``directory``; the data stays."""
    cluster = Cluster.load(directory)
    if cluster is None:
        return
    for pid in cluster.worker_pids:
        _stop_group(pid)
    redis_pid = Path(cluster.dir) / "redis" / "redis.pid"
    if redis_pid.exists():
        with contextlib.suppress(ValueError):
            _stop_group(int(redis_pid.read_text()))
        redis_pid.unlink(missing_ok=True)
    pg_ctl = [*_as_postgres_user(), _postgres_program("pg_ctl"), "-D", str(Path(cluster.dir) / "postgres")]
    if subprocess.run([*pg_ctl, "status"], capture_output=True).returncode == 0:  # not after a reboot, say
        _run([*pg_ctl, "-m", "fast", "-w", "stop"], "stopping Postgres")
    (Path(cluster.dir) / STATE).unlink()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cluster", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in [("up", "start Postgres, Redis and the workers"), ("down", "stop all of them"),
                       ("status", "say what runs where")]:  # fmt: skip
        command = commands.add_parser(name, help=text)
        command.add_argument("--dir", default=str(ROOT / ".cluster"), help="the cluster's data and logs")
    up_ = commands.choices["up"]
    up_.add_argument("--workers", type=int, default=2, help="server workers (default 2)")
    up_.add_argument("--port", type=int, default=8123, help="the first worker's port; the others count up")
    up_.add_argument("--pg-port", type=int, default=5433)
    up_.add_argument("--redis-port", type=int, default=6380)
    up_.add_argument("--moa-config", help="a MoA configuration file (TOML) every run starts from")
    # the server's own default is 1 run at a time; 10 is LangGraph's (and `langgraph dev`'s).
    up_.add_argument("--jobs-per-worker", type=int, default=10, help="runs one worker executes at once")
    up_.add_argument("--lease", type=int,
                     help="seconds a worker holds a run without renewing it; a dead worker's runs go to "
                          "another after this long (at least 5; default 60)")  # fmt: skip
    one = commands.add_parser("worker", help="run one worker here, against a Postgres and Redis anywhere")
    one.add_argument("--host", default="127.0.0.1")
    one.add_argument("--port", type=int, default=8123)
    one.add_argument("--database-uri", help="default: DATABASE_URI")
    one.add_argument("--redis-uri", help="default: REDIS_URI")
    for command in (up_, one):
        command.add_argument("--config", default=str(ROOT / "langgraph.json"), help="the graphs to serve")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "worker":
            worker(args)  # returns only by raising: on success the worker replaces this process
        directory = Path(args.dir).resolve()
        if args.command == "up":
            if args.workers < 1:
                raise ClusterError(f"--workers must be at least 1, not {args.workers}")
            cluster = up(args)
            print(f"up: workers at {' '.join(cluster.urls)}; logs in {directory / 'logs'}")
        elif args.command == "down":
            down(directory)
            print(f"down: nothing of {directory} runs")
        elif (running := Cluster.load(directory)) is None:
            print(f"no cluster of {directory} is up")
        else:
            workers = [
                {"url": url, "pid": pid, "running": _alive(pid) and _answers(url)}
                for url, pid in zip(running.urls, running.worker_pids, strict=True)
            ]
            print(json.dumps(asdict(running) | {"urls": running.urls, "workers": workers,
                                                "database_uri": running.database_uri,
                                                "redis_uri": running.redis_uri}, indent=2))  # fmt: skip
    except ClusterError as error:
        print(f"cluster: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
