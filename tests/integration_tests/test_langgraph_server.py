"""``langgraph dev`` serves the MoA graph; the official SDK client converses with it.

The server runs the repository's ``langgraph.json`` on a free loopback port with the embedded local
model (greedy, short answers), so nothing leaves the machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient

pytestmark = [pytest.mark.local_model, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = {"proposers": ["local:qwen2.5-coder-0.5b"] * 2, "max_tokens": 24, "temperature": 0}


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, free_port: Callable[[], int]
) -> Iterator[SyncLangGraphClient]:
    port = free_port()
    log = (tmp_path_factory.mktemp("server") / "langgraph-dev.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("langgraph")), "dev", "--no-browser", "--no-reload",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "LANGSMITH_TRACING": "false"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, f"langgraph dev exited; see {log.name}"
            try:
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"langgraph dev did not start; see {log.name}"
            time.sleep(0.5)
        yield get_sync_client(url=url)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def _say(client: SyncLangGraphClient, thread: str, assistant: str, text: str) -> dict:
    return client.runs.wait(thread, assistant, input={"messages": [{"role": "user", "content": text}]})


def test_a_configured_assistant_keeps_a_threads_conversation(client: SyncLangGraphClient) -> None:
    assistant = client.assistants.create("moa", config={"configurable": CONFIG})["assistant_id"]
    thread = client.threads.create()["thread_id"]
    first = _say(client, thread, assistant, "My name is Ada. Say hello to me.")
    second = _say(client, thread, assistant, "What is my name?")
    messages = client.threads.get_state(thread)["values"]["messages"]
    assert [m["type"] for m in messages] == ["human", "ai", "human", "ai"]
    assert messages[2]["content"] == "What is my name?"
    # Two proposers, as configured; and the second turn's prompt carried the first turn.
    layers = messages[3]["response_metadata"]["moa"]["layers"]
    assert [len(layer) for layer in layers] == [2]
    first_input = first["messages"][-1]["usage_metadata"]["input_tokens"]
    second_input = second["messages"][-1]["usage_metadata"]["input_tokens"]
    assert second_input > first_input
    assert "ada" in messages[3]["content"].lower()


def test_streaming_shows_proposer_progress_and_the_aggregators_tokens(client: SyncLangGraphClient) -> None:
    assistant = client.assistants.create("moa", config={"configurable": CONFIG})["assistant_id"]
    thread = client.threads.create()["thread_id"]
    progress, tokens, final = [], [], None
    for part in client.runs.stream(
        thread, assistant,
        input={"messages": [{"role": "user", "content": "Name three colors."}]},
        stream_mode=["custom", "messages-tuple", "updates"],
    ):  # fmt: skip
        if part.event == "custom" and part.data["kind"] == "proposer_started":
            progress.append(("proposer_started", part.data["node"]))
        elif part.event == "custom" and part.data["kind"] == "proposal":
            progress.append(("proposal", part.data["proposal"]["node"]))
        elif part.event == "messages" and part.data[1].get("langgraph_node") == "aggregator":
            tokens.append(part.data[0]["content"])  # the README's hint: each token once, nothing more
        elif part.event == "updates" and "aggregator" in part.data:
            final = part.data["aggregator"]["messages"][-1]["content"]
    nodes = ["layer 1 #1 qwen2.5-coder-0.5b", "layer 1 #2 qwen2.5-coder-0.5b"]
    assert sorted(progress) == sorted(
        [("proposer_started", n) for n in nodes] + [("proposal", n) for n in nodes]
    )
    assert len([t for t in tokens if t]) > 2  # token by token, not one block
    assert "".join(tokens) == final


def test_the_server_draws_the_graph(client: SyncLangGraphClient) -> None:
    assistant = client.assistants.create("moa", config={"configurable": {**CONFIG, "layers": 3}})[
        "assistant_id"
    ]
    drawing = client.assistants.get_graph(assistant)
    nodes = {n["id"] for n in drawing["nodes"]}
    assert {
        "layer 1 #1 qwen2.5-coder-0.5b",
        "layer 2 #2 qwen2.5-coder-0.5b",
        "aggregator",
    } <= nodes
    edges = {(e["source"], e["target"]) for e in drawing["edges"]}
    assert ("layer 1 #2 qwen2.5-coder-0.5b", "layer 2 #1 qwen2.5-coder-0.5b") in edges
    assert ("layer 2 #2 qwen2.5-coder-0.5b", "aggregator") in edges


def test_the_assistant_form_is_typed_from_the_moa_options(client: SyncLangGraphClient) -> None:
    assistant = client.assistants.create("moa", config={"configurable": CONFIG})["assistant_id"]
    schemas = client.assistants.get_schemas(assistant)
    properties = schemas["context_schema"]["properties"]
    assert {
        "preset",
        "proposers",
        "aggregator",
        "layers",
        "temperature",
        "max_tokens",
        "proposal_quorum",
    } <= set(properties)
    assert "Token limit of the aggregator's answer" in properties["max_tokens"]["description"]
    assert "staircase" in properties and "proposer_max_tokens" in properties


def test_a_bad_configuration_fails_the_run_with_the_value_named(client: SyncLangGraphClient) -> None:
    assistant = client.assistants.create("moa", config={"configurable": {**CONFIG, "max_tokens": "lots"}})[
        "assistant_id"
    ]
    thread = client.threads.create()["thread_id"]
    run = client.runs.create(thread, assistant, input={"messages": [{"role": "user", "content": "hi"}]})
    client.runs.join(thread, run["run_id"])
    status = client.runs.get(thread, run["run_id"])["status"]
    assert status == "error"
