"""`moa serve`'s own endpoints on a real uvicorn server, read with httpx as any client would: the run's
events as server-sent events (``POST /v1/moa/events``), threads, the options a request may set, and the
page's files and headers. The page itself is driven in a browser in ``test_page.py``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langchain_core.caches import InMemoryCache

from langchain_moa import MoAChatModel
from langchain_moa.fakes import CallTally, ScriptedChatModel
from langchain_moa.options import per_request_options
from langchain_moa.server.app import create_app
from langchain_moa.server.limits import Limits
from langchain_moa.server.page import CONTENT_SECURITY_POLICY
from langchain_moa.server.registry import ModelRegistry
from langchain_moa.threads import Threads
from tests.openai_endpoints import serve_in_thread

KEY = "events-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
tally = CallTally()


def _moa(**options: Any) -> MoAChatModel:
    return MoAChatModel(
        proposers=[
            ScriptedChatModel(
                respond=lambda m, k: RuntimeError("provider down") if "broken" in m[-1].text else "Answer: B",
                model_name=f"p{i}",
                tally=tally,
            )
            for i in (1, 2, 3)
        ],
        aggregator=ScriptedChatModel(
            respond=lambda m, k: f"Synthesis of {sum(x.type != 'system' for x in m)} messages.",
            model_name="agg",
        ),
        **options,
    )


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    slow = MoAChatModel(
        proposers=[ScriptedChatModel(answer=" ".join(["word"] * 300), token_delay=0.05, tally=tally)] * 2,
        aggregator=ScriptedChatModel(answer="never", tally=tally),
    )
    cached = _moa(cache=InMemoryCache())
    registry = ModelRegistry(
        {"moa-test": _moa, "moa-agreeing": lambda: _moa(early_exit=0.6), "moa-slow": lambda: slow,
         "moa-cached": lambda: cached}
    )  # fmt: skip
    threads = Threads(tmp_path_factory.mktemp("threads") / "threads.sqlite")
    root, server = serve_in_thread(
        create_app(registry, api_key=KEY, threads=threads, limits=Limits(max_body_bytes=64 * 1024))
    )
    yield root
    server.should_exit = True


def _events(url: str, body: dict[str, Any], **headers: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    with httpx.stream(
        "POST", f"{url}/v1/moa/events", json=body, headers={**AUTH, **headers}, timeout=30
    ) as reply:
        assert reply.status_code == 200, reply.read()
        assert reply.headers["content-type"].startswith("text/event-stream")
        for block in reply.read().decode().split("\n\n"):
            if block:
                kind, data = block.split("\n")
                events.append((kind.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


def _ask(text: str, **fields: Any) -> dict[str, Any]:
    return {"model": "moa-test", "messages": [{"role": "user", "content": text}], **fields}


def test_a_run_streams_every_proposal_then_the_answer(url: str) -> None:
    events = _events(url, _ask("Hi"))
    kinds = [kind for kind, _ in events]
    assert kinds[:3] == ["proposer_started"] * 3
    chunks = [data for kind, data in events if kind == "proposal_chunk"]
    assert {(c["node"], c["layer"], c["index"]) for c in chunks} == {
        (f"layer 1 #{i} p{i}", 1, i) for i in (1, 2, 3)
    }
    for i in (1, 2, 3):  # each proposal's chunks make its text
        assert "".join(c["text"] for c in chunks if c["index"] == i) == "Answer: B"
    proposals = [data for kind, data in events if kind == "proposal"]
    assert [(p["index"], p["content"], p["error"]) for p in proposals] == [
        (i, "Answer: B", None) for i in (1, 2, 3)
    ]
    assert all(p["usage"]["total_tokens"] > 0 for p in proposals)
    assert kinds.index("aggregator_started") > max(i for i, k in enumerate(kinds) if k == "proposal")
    assert "".join(data["text"] for kind, data in events if kind == "token") == "Synthesis of 1 messages."
    kind, answer = events[-1]
    assert kind == "answer" and kinds.count("answer") == 1
    assert answer["content"] == "Synthesis of 1 messages." and answer["finish_reason"] == "stop"
    assert answer["usage"]["total_tokens"] > 0 and "cost_usd" in answer["usage"]
    assert [p["content"] for p in answer["moa"]["layers"][0]] == ["Answer: B"] * 3


def test_an_agreement_exit_is_an_event_and_the_aggregator_never_starts(url: str) -> None:
    events = _events(url, _ask("Q", model="moa-agreeing"))
    kinds = [kind for kind, _ in events]
    (agreed,) = [data for kind, data in events if kind == "agreed"]
    assert agreed["agreeing"] == [1, 2, 3] and agreed["chosen"] in (1, 2, 3)
    assert "aggregator_started" not in kinds
    assert events[-1][0] == "answer" and events[-1][1]["content"] == "Answer: B"


def test_a_staircase_run_shows_its_rounds(url: str) -> None:
    events = _events(url, _ask("Hi", moa={"staircase": 1}))
    rounds = [data for kind, data in events if kind == "aggregator_round"]
    assert rounds and rounds[-1]["complete"] is True
    assert events[-1][0] == "answer"


def test_a_cached_answer_is_the_one_event_of_its_run(url: str) -> None:
    first = _events(url, _ask("Cache me", model="moa-cached"))
    again = _events(url, _ask("Cache me", model="moa-cached"))
    assert len(first) > 1 and [kind for kind, _ in again] == ["answer"]
    assert again[0][1]["content"] == first[-1][1]["content"] == "Synthesis of 1 messages."


def test_a_run_that_fails_ends_with_an_error_event_naming_every_failed_proposer(url: str) -> None:
    events = _events(url, _ask("broken"))
    assert [data["error"] for kind, data in events if kind == "proposal"] == [
        "RuntimeError: provider down"
    ] * 3
    kind, error = events[-1]
    assert kind == "error" and error["type"] == "moa_error" and error["code"] == "moa_run_failed"
    assert "proposer 1 (p1): RuntimeError: provider down" in error["message"]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (_ask("Hi", moa={"staircase": -1}), 400, "moa.staircase"),
        (_ask("Hi", moa={"layers": 3}), 400, "moa"),
        (_ask("Hi", thread="../etc/passwd"), 400, "thread"),
        (_ask("Hi", tools=[{"type": "function", "function": {"name": "f"}}]), 400, "tools"),
        (_ask("Hi", temperature=3), 400, "temperature"),
        (_ask("Hi", model="nope"), 404, "model"),
        (_ask("x" * 70_000), 413, None),
    ],
)
def test_a_bad_request_is_refused_as_on_the_chat_endpoint_before_any_model_runs(
    url: str, body: dict[str, Any], status: int, param: str | None
) -> None:
    before = tally.finished + tally.running + tally.cancelled
    reply = httpx.post(f"{url}/v1/moa/events", json=body, headers=AUTH)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["param"] == param and reply.json()["error"]["message"]
    assert tally.finished + tally.running + tally.cancelled == before


def test_the_key_is_required_and_a_page_of_another_origin_is_refused(url: str) -> None:
    assert httpx.post(f"{url}/v1/moa/events", json=_ask("Hi")).status_code == 401
    assert httpx.get(f"{url}/v1/moa/options").status_code == 401
    foreign = {**AUTH, "Origin": "http://attacker.example"}
    for reply in (
        httpx.post(f"{url}/v1/moa/events", json=_ask("Hi"), headers=foreign),
        httpx.get(f"{url}/v1/moa/options", headers=foreign),
        httpx.get(f"{url}/v1/moa/threads/t", headers={**AUTH, "Sec-Fetch-Site": "cross-site"}),
    ):
        assert reply.status_code == 403 and reply.json()["error"]["code"] == "cross_origin"
    same = httpx.get(
        f"{url}/v1/moa/options", headers={**AUTH, "Origin": url, "Sec-Fetch-Site": "same-origin"}
    )
    assert same.status_code == 200


def test_a_thread_keeps_each_answered_turn_and_the_next_turn_reads_it(url: str) -> None:
    thread = f"t{time.time_ns()}"
    assert httpx.get(f"{url}/v1/moa/threads/{thread}", headers=AUTH).json() == {
        "thread": thread,
        "messages": [],
    }
    assert (
        _events(url, _ask("My name is Ada.", thread=thread))[-1][1]["content"] == "Synthesis of 1 messages."
    )
    _events(url, _ask("broken", thread=thread))  # failed: not kept
    second = _events(url, _ask("What is my name?", thread=thread))[-1][1]
    assert second["content"] == "Synthesis of 3 messages."  # the kept turn and the new question
    kept = httpx.get(f"{url}/v1/moa/threads/{thread}", headers=AUTH).json()["messages"]
    assert [(m["role"], m["content"]) for m in kept] == [
        ("user", "My name is Ada."),
        ("assistant", "Synthesis of 1 messages."),
        ("user", "What is my name?"),
        ("assistant", "Synthesis of 3 messages."),
    ]
    assert kept[1]["usage"]["total_tokens"] > 0 and len(kept[1]["moa"]["layers"][0]) == 3
    bad = httpx.get(f"{url}/v1/moa/threads/{'x' * 101}", headers=AUTH)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "thread"


def test_a_client_that_leaves_stops_every_model_call(url: str) -> None:
    before = tally.cancelled
    with httpx.stream(
        "POST", f"{url}/v1/moa/events", json=_ask("Hi", model="moa-slow"), headers=AUTH
    ) as reply:
        for line in reply.iter_lines():
            if line.startswith("event: proposal_chunk"):
                break
    deadline = time.monotonic() + 30
    while (tally.running or tally.cancelled < before + 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tally.running == 0 and tally.cancelled == before + 2


def test_the_options_a_request_may_set_are_described_with_their_documentation(url: str) -> None:
    described = httpx.get(f"{url}/v1/moa/options", headers=AUTH).json()
    assert described["models"] == ["moa-test", "moa-agreeing", "moa-slow", "moa-cached"]
    assert [o["name"] for o in described["request"]] == ["temperature", "max_tokens"]
    options = {o["name"]: o for o in described["moa"]}
    assert list(options) == per_request_options()
    assert options["staircase"]["schema"] == {"type": "integer"}
    assert options["staircase"]["doc"].startswith("Staircase aggregation in chunks of this many tokens")
    assert (
        "synthesize" in options["aggregation"]["schema"]["enum"]
        and options["aggregation"]["default"] == "synthesize"
    )
    assert options["early_exit"]["schema"] == {"type": "number"}


def test_the_page_and_its_files_come_with_a_strict_policy_and_nothing_else_is_served(url: str) -> None:
    page = httpx.get(f"{url}/")  # the page itself holds no secret: no key needed
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert page.headers["x-content-type-options"] == "nosniff"
    script = httpx.get(f"{url}/page/app.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    for path in ("/page/page.py", "/page/../page.py", "/page/vendor/README.md", "/page/index.html"):
        reply = httpx.get(f"{url}{path}")
        assert reply.status_code == 404 and reply.json()["error"]["message"], path


def test_the_openapi_document_describes_the_events_endpoint(url: str) -> None:
    schema = httpx.get(f"{url}/openapi.json").json()
    body = schema["paths"]["/v1/moa/events"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/RunRequest"}
    assert "thread" in schema["components"]["schemas"]["RunRequest"]["properties"]
    assert not any(path in schema["paths"] for path in ("/", "/page/{name}"))
