"""OpenAI-compatible endpoints on localhost for tests: `moa serve`'s app with a scripted model behind
it, standing for a vLLM or LiteLLM server a team runs. Each says in its answer which one answered."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn

from langchain_moa import MoAChatModel
from langchain_moa.fakes import CallTally, ScriptedChatModel
from langchain_moa.server.app import create_app
from langchain_moa.server.registry import ModelRegistry


@dataclass
class Endpoint:
    url: str
    """The base URL, ending in /v1."""
    key: str
    """The bearer key it requires."""
    tally: CallTally
    """Its model's calls: running, finished, cancelled."""
    server: uvicorn.Server

    def stop(self) -> None:
        self.server.should_exit = True


def wait_listening(port: int, process: subprocess.Popen[str], seconds: float = 60) -> None:
    """Wait until ``process`` listens on ``port``; fail with its output if it exits or takes too long."""
    deadline = time.monotonic() + seconds
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            _, err = process.communicate()
            raise AssertionError(f"the server did not start on port {port}: {err[-2000:]}")
        time.sleep(0.1)


def serve_in_thread(app: Any, port: int = 0) -> tuple[str, uvicorn.Server]:
    """``app`` on a real uvicorn server on a free loopback port (or ``port`` again, after a server
    on it stopped), in a daemon thread: its root URL. The socket is bound here and handed to the
    server, so no other process can take the port."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port a stopped server held
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def start_endpoint(answer: str, *, token_delay: float = 0.0) -> Endpoint:
    """An endpoint whose one model, ``m``, answers ``answer`` (word by word, ``token_delay`` apart)."""
    tally = CallTally()
    model = ScriptedChatModel(answer=answer, token_delay=token_delay, tally=tally)
    moa = MoAChatModel(layers=1, proposers=[], aggregator=model)
    key = f"key-{id(moa):x}"
    url, server = serve_in_thread(create_app(ModelRegistry({"m": lambda: moa}), api_key=key))
    return Endpoint(f"{url}/v1", key, tally, server)
