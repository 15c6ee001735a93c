"""`moa serve`'s app on a real uvicorn server on loopback, driven by the official `openai` client
(and LangChain's ChatOpenAI, a client we did not write), with scripted MoA behind it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from langchain_moa import MoAChatModel
from langchain_moa.fakes import CallTally, ScriptedChatModel
from langchain_moa.server.app import create_app
from langchain_moa.server.registry import ModelRegistry
from tests.openai_endpoints import serve_in_thread

KEY = "serve-test-key-0123456789"


class Served:
    def __init__(self, url: str, aggregator_tally: CallTally, proposer_tally: CallTally) -> None:
        self.url, self.aggregator_tally, self.proposer_tally = url, aggregator_tally, proposer_tally

    def client(self, key: str = KEY) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0)

    def async_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=KEY, max_retries=0)


def _answer(messages: list, kwargs: dict) -> Any:
    from langchain_core.messages import AIMessage

    text = messages[-1].text
    if kwargs.get("tools") and "weather" in text:
        return AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}])
    words = int(kwargs.get("max_tokens") or 100)
    reply = " ".join(f"w{i}" for i in range(min(words, 6)))
    return AIMessage(reply, response_metadata={"finish_reason": "length" if words < 6 else "stop"})


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    aggregator_tally, proposer_tally = CallTally(), CallTally()

    def moa() -> MoAChatModel:
        return MoAChatModel(
            proposers=[ScriptedChatModel(respond=lambda m, k: "a proposal" if "broken" not in m[-1].text
                                         else RuntimeError("provider down"), tally=proposer_tally,
                                         model_name=f"p{i}") for i in range(2)],
            aggregator=ScriptedChatModel(respond=_answer, model_name="agg", token_delay=0.02, tally=aggregator_tally),
        )  # fmt: skip

    slow = MoAChatModel(
        proposers=[ScriptedChatModel(answer="idea", tally=proposer_tally)],
        aggregator=ScriptedChatModel(
            answer=" ".join(["word"] * 200), token_delay=0.05, tally=aggregator_tally
        ),
    )

    def unavailable() -> MoAChatModel:
        return MoAChatModel(proposers=["Qwen/Qwen2.5-72B-Instruct-Turbo"], aggregator="org/m", api_key=None)

    streaming = MoAChatModel(
        proposers=[ScriptedChatModel(answer=" ".join(f"p{i}" for i in range(60)), token_delay=0.005)] * 2,
        aggregator=ScriptedChatModel(answer=" ".join(f"a{i}" for i in range(60))),
    )
    registry = ModelRegistry({"moa-test": moa, "moa-slow": lambda: slow, "moa-keyless": unavailable,
                              "moa-staircase": lambda: streaming})  # fmt: skip
    app = create_app(registry, api_key=KEY)
    url, server = serve_in_thread(app)
    yield Served(url, aggregator_tally, proposer_tally)
    server.should_exit = True


def test_models_lists_what_it_serves(served: Served) -> None:
    assert [m.id for m in served.client().models.list()] == [
        "moa-test",
        "moa-slow",
        "moa-keyless",
        "moa-staircase",
    ]


def test_a_completion_with_usage_and_the_moa_details(served: Served) -> None:
    reply = served.client().chat.completions.create(
        model="moa-test", messages=[{"role": "user", "content": "Hi"}], temperature=0.2
    )
    assert reply.choices[0].message.content == "w0 w1 w2 w3 w4 w5"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.total_tokens > 0
    moa = reply.model_extra["moa"]  # type: ignore[index]
    assert [p["content"] for p in moa["layers"][0]] == ["a proposal", "a proposal"]


def test_max_tokens_and_a_cut_answer(served: Served) -> None:
    reply = served.client().chat.completions.create(
        model="moa-test", messages=[{"role": "user", "content": "Hi"}], max_completion_tokens=3
    )
    assert reply.choices[0].message.content == "w0 w1 w2" and reply.choices[0].finish_reason == "length"


def test_a_streamed_completion_ends_with_usage_and_done(served: Served) -> None:
    stream = served.client().chat.completions.create(
        model="moa-test", messages=[{"role": "user", "content": "Hi"}], stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "w0 w1 w2 w3 w4 w5"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) >= 6  # token by token
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_tools_go_to_the_aggregator_and_come_back_as_tool_calls(served: Served) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city.",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]  # fmt: skip
    reply = served.client().chat.completions.create(
        model="moa-test", messages=[{"role": "user", "content": "What is the weather?"}], tools=tools
    )
    (call,) = reply.choices[0].message.tool_calls or []
    assert (call.function.name, call.function.arguments, reply.choices[0].finish_reason) == (
        "get_weather", '{"city": "Paris"}', "tool_calls")  # fmt: skip
    streamed = list(served.client().chat.completions.create(
        model="moa-test", messages=[{"role": "user", "content": "What is the weather?"}], tools=tools, stream=True))  # fmt: skip
    calls = [tc for c in streamed if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].function.name == "get_weather" and calls[0].id == "call_1"
    assert [c.choices[0].finish_reason for c in streamed if c.choices][-1] == "tool_calls"


async def test_the_async_client_and_concurrent_requests(served: Served) -> None:
    client = served.async_client()
    replies = await asyncio.gather(*(
        client.chat.completions.create(model="moa-test", messages=[{"role": "user", "content": f"q{i}"}])
        for i in range(8)))  # fmt: skip
    assert {r.choices[0].message.content for r in replies} == {"w0 w1 w2 w3 w4 w5"}
    stream = await client.chat.completions.create(
        model="moa-test", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    assert (
        "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "w0 w1 w2 w3 w4 w5"
    )


@pytest.mark.parametrize(
    ("request_args", "status", "param", "fragment"),
    [
        ({"model": "nope", "messages": [{"role": "user", "content": "Hi"}]}, 404, "model", "does not exist"),
        ({"model": "moa-test", "messages": []}, 400, "messages", "at least 1"),
        ({"model": "moa-test", "messages": [{"role": "user", "content": "Hi"}], "temperature": -1}, 400,
         "temperature", "greater than or equal to 0"),
        ({"model": "moa-test", "messages": [{"role": "user", "content": "   "}]}, 400, "messages",
         "the conversation has only blank text"),
        ({"model": "moa-test", "messages": [{"role": "user", "content": "Hi"}], "extra_body": {"moa": {"staircase": 0}}},
         400, "moa.staircase", "staircase must be an integer >= 1"),
        ({"model": "moa-test", "messages": [{"role": "user", "content": "Hi"}],
          "extra_body": {"moa": {"staircase": 4, "aggregation": "select"}}}, 400, "moa.staircase", "staircase cannot be combined"),
        ({"model": "moa-test", "messages": [{"role": "user", "content": "Hi"}],
          "extra_body": {"moa": {"staircase_layout": "sideways"}}}, 400, "moa.staircase_layout",
         "staircase_layout must be 'auto', 'prefill' or 'turns', got 'sideways'"),
        ({"model": "moa-test", "messages": [{"role": "user", "content": "Hi"}], "extra_body": {"moa": {"proposers": ["x"]}}},
         400, "moa", "'proposers' cannot be set per request"),
        ({"model": "moa-test", "messages": [{"role": "user", "content": "Hi"}], "extra_body": {"moa": {"max_concurrency": 99}}},
         400, "moa", "'max_concurrency' cannot be set per request"),
    ],
)  # fmt: skip
def test_bad_requests_are_openai_errors_naming_the_field(
    served: Served, request_args: dict, status: int, param: str, fragment: str
) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        served.client().chat.completions.create(**request_args)
    assert caught.value.status_code == status
    error = caught.value.body
    assert isinstance(error, dict) and error["param"] == param and fragment in error["message"]
    assert served.client().models.list().data  # and the server goes on serving


def test_a_failed_moa_run_is_502_naming_the_failed_proposers(served: Served) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        served.client().chat.completions.create(
            model="moa-test", messages=[{"role": "user", "content": "broken"}]
        )
    assert caught.value.status_code == 502
    message = caught.value.body["message"]  # type: ignore[index]
    assert "proposer 1 (p0): RuntimeError: provider down" in message and "proposer 2 (p1)" in message


def test_a_wrong_or_missing_key_is_401(served: Served) -> None:
    with pytest.raises(openai.AuthenticationError):
        served.client(key="wrong").models.list()
    raw = httpx.get(f"{served.url}/v1/models")  # no key at all
    assert raw.status_code == 401 and raw.json()["error"]["code"] == "invalid_api_key"
    assert KEY not in raw.text


def test_a_client_that_disconnects_mid_stream_cancels_the_run(served: Served) -> None:
    before = served.aggregator_tally.cancelled
    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {KEY}"}) as http:
        body = {"model": "moa-slow", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            lines = response.iter_lines()
            assert next(lines).startswith("data: ")  # the stream has started; now the client leaves
    deadline = time.monotonic() + 10
    while served.aggregator_tally.cancelled == before or served.aggregator_tally.running:
        assert time.monotonic() < deadline, "the MoA run went on after the client left"
        time.sleep(0.05)


def test_a_request_sets_its_own_staircase_and_proposal_budget(served: Served) -> None:
    stream = served.client().chat.completions.create(
        model="moa-staircase", messages=[{"role": "user", "content": "Hi"}], stream=True, max_tokens=12,
        extra_body={"moa": {"staircase": 4, "proposer_max_tokens": 30}},
    )  # fmt: skip
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 12
    moa = chunks[-1].model_extra["moa"]  # type: ignore[index]
    assert moa["staircase"]["chunk"] == 4 and len(moa["staircase"]["rounds"]) == 3
    assert moa["staircase"]["layout"] == "turns"  # "auto" for a model not known to continue a message
    prefilled = served.client().chat.completions.create(
        model="moa-staircase", messages=[{"role": "user", "content": "Hi"}], max_tokens=12,
        extra_body={"moa": {"staircase": 4, "staircase_layout": "prefill"}},
    )  # fmt: skip
    assert prefilled.model_extra["moa"]["staircase"]["layout"] == "prefill"  # type: ignore[index]
    assert all(p["cut"] for p in moa["layers"][-1])  # the answer was whole before the proposals
    budget = served.client().chat.completions.create(
        model="moa-staircase", messages=[{"role": "user", "content": "Hi"}], max_tokens=12,
        extra_body={"moa": {"proposer_max_tokens": 30}},
    )  # fmt: skip
    assert [len(p["content"].split()) for p in budget.model_extra["moa"]["layers"][-1]] == [30, 30]  # type: ignore[index]
    assert "staircase" not in budget.model_extra["moa"]  # type: ignore[index]  # the variant was that request's


def test_langchain_chat_openai_speaks_to_it(served: Served) -> None:
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(model="moa-test", base_url=f"{served.url}/v1", api_key=KEY, max_retries=0)
    assert model.invoke("Hi").content == "w0 w1 w2 w3 w4 w5"
    assert "".join(c.text for c in model.stream("Hi")) == "w0 w1 w2 w3 w4 w5"


def test_a_model_that_cannot_run_here_is_503_naming_why(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    with pytest.raises(openai.APIStatusError) as caught:
        served.client().chat.completions.create(
            model="moa-keyless", messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.status_code == 503
    assert caught.value.body["param"] == "model" and "TOGETHER_API_KEY" in caught.value.body["message"]  # type: ignore[index]


def test_malformed_tools_are_400_naming_tools(served: Served) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        served.client().chat.completions.create(
            model="moa-test",
            messages=[{"role": "user", "content": "Hi"}],
            tools=[{"foo": 1}],  # type: ignore[list-item]
        )
    assert caught.value.body["param"] == "tools.0.type"  # type: ignore[index]


def test_a_client_that_leaves_before_a_whole_answer_cancels_the_run(served: Served) -> None:
    before = served.aggregator_tally.cancelled
    body = {"model": "moa-slow", "messages": [{"role": "user", "content": "Hi"}]}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{served.url}/v1/chat/completions", json=body, timeout=1.0,
                   headers={"Authorization": f"Bearer {KEY}"})  # fmt: skip
    deadline = time.monotonic() + 10
    while served.aggregator_tally.cancelled == before or served.aggregator_tally.running:
        assert time.monotonic() < deadline, "the MoA run went on after the client left"
        time.sleep(0.05)
