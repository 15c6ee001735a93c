"""MoAChatModel as a LangChain chat model: parallelism, streaming, usage, failures, callbacks, cache."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from uuid import UUID

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import BaseCallbackHandler, get_usage_metadata_callback
from langchain_core.globals import set_llm_cache
from langchain_core.messages import AIMessage, HumanMessage

from langchain_moa import AggregatorError, MoAChatModel, MoAError
from langchain_moa.fakes import CallTally, ScriptedChatModel


def make_moa(n: int = 3, layers: int = 2, sleep: float = 0.0, **fields: Any) -> MoAChatModel:
    proposers = [ScriptedChatModel(answer=f"idea {i}", model_name=f"p{i}", sleep=sleep) for i in range(n)]
    aggregator = ScriptedChatModel(answer="the final answer", model_name="agg")
    return MoAChatModel(proposers=proposers, aggregator=aggregator, layers=layers, **fields)


# -- parallelism (sleeping fakes against generous bounds) --------------------------------------


@pytest.mark.parametrize("layers", [2, 3])
def test_sync_proposers_of_a_layer_run_concurrently(layers: int) -> None:
    moa = make_moa(n=4, layers=layers, sleep=0.4)
    started = time.perf_counter()
    moa.invoke("Q")
    elapsed = time.perf_counter() - started
    critical_path, serial = 0.4 * (layers - 1), 0.4 * 4 * (layers - 1)
    assert critical_path <= elapsed < critical_path + 0.6 < serial


@pytest.mark.parametrize("layers", [2, 3])
async def test_async_proposers_of_a_layer_run_concurrently(layers: int) -> None:
    moa = make_moa(n=4, layers=layers, sleep=0.4)
    started = time.perf_counter()
    await moa.ainvoke("Q")
    elapsed = time.perf_counter() - started
    critical_path, serial = 0.4 * (layers - 1), 0.4 * 4 * (layers - 1)
    assert critical_path <= elapsed < critical_path + 0.6 < serial


async def test_max_concurrency_bounds_simultaneous_calls_across_calls() -> None:
    tally = CallTally()
    moa = MoAChatModel(
        proposers=[ScriptedChatModel(answer="idea", sleep=0.02, tally=tally) for _ in range(4)],
        aggregator=ScriptedChatModel(answer="final"),
        max_concurrency=3,
    )
    results = await moa.abatch(["Q"] * 10)
    assert [r.content for r in results] == ["final"] * 10
    assert tally.peak == 3


# -- streaming -----------------------------------------------------------------------------------


def test_stream_yields_only_the_aggregators_tokens() -> None:
    moa = make_moa()
    chunks = list(moa.stream("Q"))
    text = "".join(c.text for c in chunks)
    assert text == "the final answer"
    assert len([c for c in chunks if c.text]) == 3  # word by word, not one block
    assert not any("idea" in c.text for c in chunks)
    assert chunks[-1].chunk_position == "last"


async def test_astream_yields_tokens_as_they_arrive() -> None:
    proposers = [ScriptedChatModel(answer="idea")]
    aggregator = ScriptedChatModel(answer="one two three four five", token_delay=0.15)
    moa = MoAChatModel(proposers=proposers, aggregator=aggregator)
    started = time.perf_counter()
    arrivals = [(time.perf_counter() - started, c.text) async for c in moa.astream("Q")]
    first = next(t for t, text in arrivals if text)
    last = next(t for t, text in reversed(arrivals) if text)
    assert "".join(text for _, text in arrivals) == "one two three four five"
    assert last - first >= 0.5  # the first token came well before the answer was complete


def test_streamed_and_invoked_answers_carry_the_same_metadata() -> None:
    moa = make_moa()
    invoked = moa.invoke("Q")
    streamed = None
    for chunk in moa.stream("Q"):
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed is not None
    assert streamed.content == invoked.content
    assert streamed.usage_metadata == invoked.usage_metadata
    assert streamed.response_metadata["moa"]["layers"] == [
        [
            {**p, "latency_s": pytest.approx(p["latency_s"], abs=1)}
            for p in invoked.response_metadata["moa"]["layers"][0]
        ]
    ]


async def test_astream_events_reports_the_moa_runs_tokens() -> None:
    moa = make_moa()
    events = [e async for e in moa.astream_events("Q", version="v2")]
    moa_tokens = [
        e["data"]["chunk"].text
        for e in events
        if e["event"] == "on_chat_model_stream" and e["name"] == "MoAChatModel"
    ]
    assert "".join(moa_tokens) == "the final answer"
    ends = [e for e in events if e["event"] == "on_chat_model_end" and e["name"] == "MoAChatModel"]
    assert ends[0]["data"]["output"].content == "the final answer"


def test_batch_and_abatch() -> None:
    moa = make_moa()
    assert [m.content for m in moa.batch(["a", "b"])] == ["the final answer"] * 2
    assert [m.content for m in asyncio.run(moa.abatch(["a", "b"]))] == ["the final answer"] * 2


# -- usage and metadata --------------------------------------------------------------------------


def test_usage_is_summed_over_every_call_and_proposals_are_recorded() -> None:
    moa = make_moa(n=3, layers=3)
    result = moa.invoke("What now?")
    layers = result.response_metadata["moa"]["layers"]
    assert [[p["model"] for p in layer] for layer in layers] == [["p0", "p1", "p2"]] * 2
    assert [[p["content"] for p in layer] for layer in layers] == [["idea 0", "idea 1", "idea 2"]] * 2
    assert all(p["error"] is None and p["latency_s"] >= 0 for layer in layers for p in layer)
    aggregator = result.response_metadata["moa"]["aggregator"]
    calls = [p["usage"] for layer in layers for p in layer] + [aggregator["usage"]]
    assert len(calls) == 7
    assert result.usage_metadata is not None
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        assert result.usage_metadata[key] == sum(u[key] for u in calls)
    assert result.usage_metadata["output_tokens"] == 6 * 2 + 3
    assert result.response_metadata["model_name"] == "moa/agg"


def test_usage_callback_counts_each_token_once() -> None:
    moa = make_moa()
    with get_usage_metadata_callback() as callback:
        result = moa.invoke("Q")
        for _ in moa.stream("Q"):
            pass
    assert result.usage_metadata is not None
    assert (
        sum(u["total_tokens"] for u in callback.usage_metadata.values())
        == 2 * result.usage_metadata["total_tokens"]
    )


# -- failures ------------------------------------------------------------------------------------


def test_a_failing_proposer_is_dropped_and_recorded() -> None:
    proposers = [
        ScriptedChatModel(answer="good one", model_name="ok"),
        ScriptedChatModel(answer=ConnectionError("provider down"), model_name="broken"),
        ScriptedChatModel(answer="good two", model_name="ok2"),
    ]
    aggregator = ScriptedChatModel(answer="final")
    result = MoAChatModel(proposers=proposers, aggregator=aggregator).invoke("Q")
    assert result.content == "final"
    assert aggregator.calls[0]["messages"][0].content.endswith("\n1. good one\n2. good two")
    failed = result.response_metadata["moa"]["layers"][0][1]
    assert failed["model"] == "broken"
    assert failed["content"] is None
    assert failed["error"] == "ConnectionError: provider down"


def test_an_empty_answer_is_dropped() -> None:
    proposers = [ScriptedChatModel(answer="   "), ScriptedChatModel(answer="real")]
    aggregator = ScriptedChatModel(answer="final")
    result = MoAChatModel(proposers=proposers, aggregator=aggregator).invoke("Q")
    assert aggregator.calls[0]["messages"][0].content.endswith("\n1. real")
    assert result.response_metadata["moa"]["layers"][0][0]["error"].startswith("EmptyAnswer")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_slow_proposer_is_dropped_at_the_timeout(mode: str) -> None:
    proposers = [
        ScriptedChatModel(answer="fast"),
        ScriptedChatModel(answer="slow", sleep=3, model_name="slowpoke"),
    ]
    aggregator = ScriptedChatModel(answer="final")
    moa = MoAChatModel(proposers=proposers, aggregator=aggregator, proposer_timeout=0.3)
    started = time.perf_counter()
    result = moa.invoke("Q") if mode == "sync" else asyncio.run(moa.ainvoke("Q"))
    assert time.perf_counter() - started < 2
    assert aggregator.calls[0]["messages"][0].content.endswith("\n1. fast")
    slow = result.response_metadata["moa"]["layers"][0][1]
    assert slow["error"] == "TimeoutError: no answer within 0.3s (proposer_timeout)"


def test_too_few_proposals_raise_moa_error_naming_every_failure() -> None:
    proposers = [
        ScriptedChatModel(answer=RuntimeError("rate limited"), model_name="a"),
        ScriptedChatModel(answer=ValueError("bad json"), model_name="b"),
        ScriptedChatModel(answer="fine", model_name="c"),
    ]
    aggregator = ScriptedChatModel(answer="final")
    moa = MoAChatModel(proposers=proposers, aggregator=aggregator, min_proposals=2)
    with pytest.raises(MoAError) as caught:
        moa.invoke("Q")
    message = str(caught.value)
    assert "layer 1 kept 1 of 3 proposals, fewer than min_proposals=2" in message
    assert "proposer 1 (a): RuntimeError: rate limited" in message
    assert "proposer 2 (b): ValueError: bad json" in message
    assert aggregator.calls == []


async def test_async_failures_raise_moa_error_too() -> None:
    proposers = [ScriptedChatModel(answer=RuntimeError("boom"), model_name="a")]
    with pytest.raises(MoAError, match=r"proposer 1 \(a\): RuntimeError: boom"):
        await MoAChatModel(proposers=proposers, aggregator=ScriptedChatModel()).ainvoke("Q")


def test_an_aggregator_failure_is_an_aggregator_error_with_the_cause() -> None:
    moa = MoAChatModel(
        proposers=[ScriptedChatModel(answer="idea")],
        aggregator=ScriptedChatModel(answer=TimeoutError("read timed out"), model_name="agg"),
    )
    with pytest.raises(
        AggregatorError, match=r"aggregator \(agg\) failed: TimeoutError: read timed out"
    ) as caught:
        moa.invoke("Q")
    assert isinstance(caught.value.__cause__, TimeoutError)


def test_max_retries_retries_a_failing_proposer() -> None:
    flaky = ScriptedChatModel(answers=[ConnectionError("reset"), "second try"], model_name="flaky")
    aggregator = ScriptedChatModel(answer="final")
    result = MoAChatModel(proposers=[flaky], aggregator=aggregator, max_retries=2).invoke("Q")
    assert len(flaky.calls) == 2
    assert result.response_metadata["moa"]["layers"][0][0]["content"] == "second try"


# -- callbacks: one tree -------------------------------------------------------------------------


class RunTree(BaseCallbackHandler):
    def __init__(self) -> None:
        self.parents: dict[UUID, UUID | None] = {}
        self.chat_models: list[tuple[UUID, str]] = []

    def on_chat_model_start(
        self,
        serialized: Any,
        messages: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self.parents[run_id] = parent_run_id
        self.chat_models.append((run_id, kwargs.get("name") or serialized.get("name", "")))

    def on_chain_start(
        self, serialized: Any, inputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self.parents[run_id] = parent_run_id

    def root_of(self, run_id: UUID) -> UUID:
        while self.parents.get(run_id) is not None:
            run_id = self.parents[run_id]  # type: ignore[assignment]
        return run_id


def _assert_one_tree(tree: RunTree) -> None:
    moa_runs = [run for run, _ in tree.chat_models if tree.parents[run] is None]
    assert len(moa_runs) == 1, tree.chat_models
    children = [run for run, _ in tree.chat_models if run != moa_runs[0]]
    assert len(children) == 4  # three proposers and the aggregator
    assert all(tree.root_of(run) == moa_runs[0] for run in children)


@pytest.mark.parametrize("call", ["invoke", "stream"])
def test_child_model_calls_nest_under_the_moa_run(call: str) -> None:
    tree = RunTree()
    moa = make_moa()
    if call == "invoke":
        moa.invoke("Q", config={"callbacks": [tree]})
    else:
        list(moa.stream("Q", config={"callbacks": [tree]}))
    _assert_one_tree(tree)


@pytest.mark.parametrize("call", ["ainvoke", "astream"])
async def test_async_child_model_calls_nest_under_the_moa_run(call: str) -> None:
    tree = RunTree()
    moa = make_moa()
    if call == "ainvoke":
        await moa.ainvoke("Q", config={"callbacks": [tree]})
    else:
        _ = [c async for c in moa.astream("Q", config={"callbacks": [tree]})]
    _assert_one_tree(tree)


# -- cache keys ----------------------------------------------------------------------------------


def test_cache_keys_tell_configurations_apart() -> None:
    set_llm_cache(InMemoryCache())
    try:
        base = dict(aggregator=ScriptedChatModel(answer="A", model_name="agg"))
        one = MoAChatModel(proposers=[ScriptedChatModel(model_name="x")], **base)
        same = MoAChatModel(proposers=[ScriptedChatModel(model_name="x")], **base)
        other_proposer = MoAChatModel(proposers=[ScriptedChatModel(model_name="y")], **base)
        other_layers = MoAChatModel(proposers=[ScriptedChatModel(model_name="x")], layers=3, **base)
        other_prompt = MoAChatModel(
            proposers=[ScriptedChatModel(model_name="x")], aggregator_prompt="Refs:", **base
        )
        key = one._get_llm_string()
        assert same._get_llm_string() == key
        for other in (other_proposer, other_layers, other_prompt):
            assert other._get_llm_string() != key
        # And the cache really serves a repeat call without calling any model.
        one.invoke("Q")
        calls = len(base["aggregator"].calls)
        same.invoke("Q")
        assert len(base["aggregator"].calls) == calls
        other_proposer.invoke("Q")
        assert len(base["aggregator"].calls) == calls + 1
    finally:
        set_llm_cache(None)


def test_two_custom_strategies_never_share_a_cached_answer() -> None:
    set_llm_cache(InMemoryCache())
    try:

        def strategy(word: str) -> object:
            return lambda conversation, proposals: word  # closures of one name

        models = [
            MoAChatModel(proposers=[ScriptedChatModel()], aggregator=ScriptedChatModel(), aggregation=f)
            for f in (lambda c, p: "first", lambda c, p: "second", strategy("third"), strategy("fourth"))
        ]
        assert [m.invoke("Q").content for m in models] == ["first", "second", "third", "fourth"]
    finally:
        set_llm_cache(None)


# -- tools, structured output and agents ---------------------------------------------------------


def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"18C and sunny in {city}"


def test_tools_go_to_the_aggregator_only() -> None:
    proposers = [ScriptedChatModel(answer="I would check the weather.")]

    def aggregate(messages: list, kwargs: dict) -> AIMessage:
        assert [t["function"]["name"] for t in kwargs["tools"]] == ["get_weather"]
        return AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}])

    aggregator = ScriptedChatModel(respond=aggregate)
    moa = MoAChatModel(proposers=proposers, aggregator=aggregator)
    result = moa.bind_tools([get_weather], tool_choice="any").invoke("Weather in Paris?")
    assert result.tool_calls == [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": "c1", "type": "tool_call"}
    ]
    assert aggregator.calls[0]["kwargs"]["tool_choice"] == "any"
    assert "tools" not in proposers[0].calls[0]["kwargs"]
    streamed = None
    for chunk in moa.bind_tools([get_weather]).stream("Weather in Paris?"):
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed is not None and streamed.tool_calls[0]["args"] == {"city": "Paris"}


def test_create_agent_completes_a_tool_loop() -> None:
    from langchain.agents import create_agent

    def aggregate(messages: list, kwargs: dict) -> AIMessage | str:
        if messages[-1].type == "tool":
            return f"Answer: {messages[-1].text}"
        return AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}])

    proposers = [ScriptedChatModel(respond=lambda m, k: f"proposal after {m[-1].type}") for _ in range(2)]
    moa = MoAChatModel(proposers=proposers, aggregator=ScriptedChatModel(respond=aggregate))
    agent = create_agent(moa, [get_weather])
    result = agent.invoke({"messages": [HumanMessage("Weather in Paris?")]})
    assert result["messages"][-1].content == "Answer: 18C and sunny in Paris"
    # In the second round proposers saw the tool's result as text.
    second = proposers[0].calls[1]["messages"]
    assert second[-1].content == "Result of get_weather: 18C and sunny in Paris"


def test_with_structured_output_returns_the_schema() -> None:
    from pydantic import BaseModel

    class Capital(BaseModel):
        country: str
        city: str

    def aggregate(messages: list, kwargs: dict) -> AIMessage:
        (tool,) = kwargs["tools"]
        return AIMessage(
            "",
            tool_calls=[
                {"name": tool["function"]["name"], "args": {"country": "France", "city": "Paris"}, "id": "c1"}
            ],
        )

    moa = MoAChatModel(
        proposers=[ScriptedChatModel(answer="Paris")], aggregator=ScriptedChatModel(respond=aggregate)
    )
    assert moa.with_structured_output(Capital).invoke("Capital of France?") == Capital(
        country="France", city="Paris"
    )


def test_structured_output_is_announced_on_the_moa_run() -> None:
    from pydantic import BaseModel

    class Joke(BaseModel):
        setup: str
        punchline: str

    class Starts(BaseCallbackHandler):
        def __init__(self) -> None:
            self.roots: list[dict] = []  # options of the MoA run's start

        def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
            if kwargs["invocation_params"]["_type"] == "moa":
                self.roots.append(kwargs["options"])

    def aggregate(messages: list, kwargs: dict) -> AIMessage:
        return AIMessage(
            "", tool_calls=[{"name": "Joke", "args": {"setup": "s", "punchline": "p"}, "id": "c1"}]
        )

    moa = MoAChatModel(
        proposers=[ScriptedChatModel(answer="a joke")], aggregator=ScriptedChatModel(respond=aggregate)
    )
    starts = Starts()
    assert moa.with_structured_output(Joke).invoke("A joke", config={"callbacks": [starts]}) == Joke(
        setup="s", punchline="p"
    )
    (options,) = starts.roots
    assert options["ls_structured_output_format"]["schema"]["title"] == "Joke"


def test_changed_fields_take_effect() -> None:
    proposer = ScriptedChatModel(answer="idea")
    moa = MoAChatModel(proposers=[proposer], aggregator=ScriptedChatModel(answer="ok"), temperature=0.1)
    moa.temperature = 0.9
    moa.invoke("Q")
    assert proposer.calls[-1]["kwargs"]["temperature"] == 0.9
    deeper = moa.model_copy(update={"layers": 3})
    assert len(deeper.invoke("Q").response_metadata["moa"]["layers"]) == 2
    assert len(moa.invoke("Q").response_metadata["moa"]["layers"]) == 1


def test_usage_of_an_empty_answer_still_counts_and_none_reported_stays_none() -> None:
    empty = ScriptedChatModel(answer="   ")
    moa = MoAChatModel(
        proposers=[empty, ScriptedChatModel(answer="real idea")], aggregator=ScriptedChatModel(answer="ok")
    )
    result = moa.invoke("Q")
    layer = result.response_metadata["moa"]["layers"][0]
    assert layer[0]["usage"] is not None and layer[0]["error"].startswith("EmptyAnswer")
    assert (
        result.usage_metadata["input_tokens"]
        == sum(p["usage"]["input_tokens"] for p in layer)
        + (result.response_metadata["moa"]["aggregator"]["usage"]["input_tokens"])
    )
    silent = MoAChatModel(
        proposers=[ScriptedChatModel(answer="idea", report_usage=False)],
        aggregator=ScriptedChatModel(answer="ok", report_usage=False),
    )
    assert silent.invoke("Q").usage_metadata is None
