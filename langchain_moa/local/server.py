"""Embedded llama.cpp servers: one per model file, shared, started on first use, stopped at exit.

Each model is served by ``xllamacpp``'s in-process, OpenAI-compatible llama.cpp server on 127.0.0.1,
a free port and a random API key, with several parallel slots. Clients talk to it with
``langchain_openai.ChatOpenAI``: the same code path as any Ollama, vLLM or LM Studio endpoint.
"""

from __future__ import annotations

import atexit
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

__all__ = ["LocalServer", "running_servers", "serve", "stop_all"]

SLOT_CONTEXT = 4096
"""Context tokens of each parallel slot."""


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class LocalServer:
    """A running embedded server."""

    model_path: Path
    base_url: str
    """OpenAI-compatible endpoint, e.g. ``http://127.0.0.1:41234/v1``."""
    api_key: SecretStr
    """The random key every request must carry."""
    slots: int
    threads: int
    embedding: bool
    """Serves embeddings (``/v1/embeddings``, mean pooling) instead of chat."""
    handle: Any
    """The ``xllamacpp.Server``; the server stops when it is released."""


_servers: dict[tuple[Path, bool], LocalServer] = {}
_lock = threading.Lock()


def serve(
    model_path: Path, *, slots: int = 4, threads: int | None = None, embedding: bool = False
) -> LocalServer:
    """The running server of ``model_path``, started if needed.

    Args:
        model_path: a verified GGUF file.
        slots: requests served at once (more queue).
        threads: CPU threads; never more than the cores this process may use.
        embedding: a server of embeddings (mean-pooled), a second server beside the model's chat one.
    """
    import xllamacpp  # guarded by langchain_moa.local

    path = model_path.resolve()
    with _lock:
        if server := _servers.get((path, embedding)):
            return server
        key = secrets.token_urlsafe(24)
        n_threads = min(threads or _cores(), _cores())
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_parallel = slots
        params.n_ctx = SLOT_CONTEXT * slots
        params.cpuparams.n_threads = n_threads
        params.cpuparams_batch.n_threads = n_threads
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # a free port
        params.api_keys = [key]
        params.verbosity = -1
        params.warmup = False
        if embedding:
            params.embedding = True
            params.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
        handle = xllamacpp.Server(params)
        server = LocalServer(
            model_path=path,
            base_url=f"{handle.listening_address}/v1",
            api_key=SecretStr(key),
            slots=slots,
            threads=n_threads,
            embedding=embedding,
            handle=handle,
        )
        _servers[(path, embedding)] = server
        return server


def running_servers() -> list[LocalServer]:
    """The servers this process has started and not stopped."""
    with _lock:
        return list(_servers.values())


@atexit.register
def stop_all() -> None:
    """Stop every server (releasing an ``xllamacpp.Server`` stops it)."""
    with _lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.handle = None
