"""MoAChatModel keeps core's contracts where it overrides core's streaming: ``disable_streaming``,
``streaming=False``, ``output_version="v1"``, chunk ids and per-chunk metadata, each checked against
what core itself does for a plain chat model; and the LLM cache: keys that tell inner models apart,
hits without token counts that never break the sum."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.globals import set_llm_cache
from langchain_core.language_models import BaseChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from langchain_moa import MoAChatModel
from langchain_moa.fakes import ScriptedChatModel

ANSWER = "the answer is four"


def plain(**fields: Any) -> BaseChatModel:
    """A plain chat model that streams word by word: core's own behaviour."""
    return GenericFakeChatModel(messages=iter([AIMessage(ANSWER)] * 4), **fields)


def moa(**fields: Any) -> BaseChatModel:
    proposers = [
        ScriptedChatModel(answer="4", model_name="p1"),
        ScriptedChatModel(answer="four", model_name="p2"),
    ]
    return MoAChatModel(proposers=proposers, aggregator=ScriptedChatModel(answer=ANSWER), **fields)


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@pytest.fixture
def cache() -> Iterator[InMemoryCache]:
    llm_cache = InMemoryCache()
    set_llm_cache(llm_cache)
    yield llm_cache
    set_llm_cache(None)


@pytest.mark.parametrize("make", [plain, moa], ids=["core", "moa"])
@pytest.mark.parametrize(
    ("fields", "tools", "one_chunk"),
    [
        ({}, False, False),
        ({"disable_streaming": True}, False, True),
        ({"disable_streaming": "tool_calling"}, False, False),
        ({"disable_streaming": "tool_calling"}, True, True),
    ],
    ids=["default", "disabled", "tool_calling-no-tools", "tool_calling-tools"],
)
async def test_stream_opt_outs_give_one_chunk_as_core_does(
    make: Any, fields: dict[str, Any], tools: bool, one_chunk: bool
) -> None:
    model = make(**fields)
    if tools and make is plain:
        # The plain fake has no bind_tools; core reads the bound kwargs all the same.
        runnable: Any = model.bind(tools=[{"type": "function", "function": {"name": "add"}}])
    else:
        runnable = model.bind_tools([add]) if tools else model
    chunks = [c async for c in runnable.astream("2+2?")]
    assert (len(chunks) == 1) is one_chunk, [c.content for c in chunks]
    assert "".join(c.text for c in chunks) == ANSWER
    sync_chunks = list(runnable.stream("2+2?"))
    assert (len(sync_chunks) == 1) is one_chunk


def test_streaming_false_set_gives_one_chunk() -> None:
    # Core's rule for a model with a ``streaming`` field (ChatOpenAI's): set to False, no token stream.
    assert len(list(moa(streaming=False).stream("2+2?"))) == 1
    assert len(list(moa(streaming=True).stream("2+2?"))) > 1


@pytest.mark.parametrize("make", [plain, moa], ids=["core", "moa"])
def test_output_version_v1_streams_content_blocks_as_core_does(make: Any) -> None:
    chunks = list(make(output_version="v1").stream("2+2?"))
    text = [c for c in chunks if c.content]
    assert len(text) >= 2
    for chunk in text:
        assert isinstance(chunk.content, list)
        assert [(b["type"], b["index"]) for b in chunk.content] == [("text", 0)]
        assert chunk.response_metadata["output_version"] == "v1"
    assert "".join(b["text"] for c in text for b in c.content) == ANSWER
    assert chunks[-1].chunk_position == "last"
    whole = make(output_version="v1").invoke("2+2?")
    assert whole.content == [{"type": "text", "text": ANSWER}]


@pytest.mark.parametrize("make", [plain, moa], ids=["core", "moa"])
async def test_chunk_ids_and_metadata_are_cores(make: Any) -> None:
    chunks: list[AIMessageChunk] = [c async for c in make().astream("2+2?")]
    ids = {c.id for c in chunks}
    assert len(ids) == 1
    (run_id,) = ids
    assert run_id is not None and run_id.startswith("lc_run--")
    for chunk in chunks[:-1]:  # every chunk but the last carries no metadata of its own
        assert chunk.response_metadata == {}
    answer = await make().ainvoke("2+2?")
    assert answer.id is not None and answer.id.startswith("lc_run--")


def test_the_cache_key_tells_endpoints_apart_and_holds_no_secret() -> None:
    # Two aggregators of one model name and settings on two servers: each inner model is described by
    # core's own ``_get_llm_string`` (its name and settings alone were the key before).
    def on(url: str) -> MoAChatModel:
        aggregator = ChatOpenAI(model="m", base_url=url, api_key="sk-never-in-a-key")
        return MoAChatModel(proposers=[ScriptedChatModel()], aggregator=aggregator)

    one, other = (
        on("http://10.0.0.1:8000/v1")._get_llm_string(),
        on("http://10.0.0.2:8000/v1")._get_llm_string(),
    )
    assert one != other
    assert "sk-never-in-a-key" not in one + other


def test_a_cache_hit_without_token_counts_makes_the_total_unknown(cache: InMemoryCache) -> None:
    def make() -> MoAChatModel:  # the MoA itself uncached: its inner calls hit the cache
        quiet = ScriptedChatModel(answer="4", model_name="quiet", report_usage=False)
        return MoAChatModel(
            proposers=[quiet, ScriptedChatModel(answer="four", model_name="loud")],
            aggregator=ScriptedChatModel(answer=ANSWER),
            cache=False,
        )

    first, again = make().invoke("2+2?"), make().invoke("2+2?")
    for answer in (first, again):
        assert answer.usage_metadata is None
        assert answer.response_metadata["moa"]["usage_missing"] == ["layer 1 #1 quiet"]
    cost = again.response_metadata["moa"]["cost"]
    assert cost["proposers"]["layer 1 #2 loud"] == 0.0  # a cache hit spent nothing


def test_a_cache_hit_with_token_counts_sums_only_token_counts(cache: InMemoryCache) -> None:
    def make() -> MoAChatModel:
        return MoAChatModel(
            proposers=[ScriptedChatModel(answer="4", model_name="p1")],
            aggregator=ScriptedChatModel(answer=ANSWER),
            cache=False,
        )

    first, again = make().invoke("2+2?"), make().invoke("2+2?")
    assert again.usage_metadata == first.usage_metadata  # core keeps a hit's counts
    assert first.usage_metadata is not None and "total_cost" not in again.usage_metadata


def test_the_cache_key_follows_fields_set_after_construction() -> None:
    model = moa(aggregation="shuffle", seed=1)
    key = model._get_llm_string()
    assert model._get_llm_string() == key  # made once, the same each call
    model.seed = 2
    assert model._get_llm_string() != key
    model.seed, model.temperature = 1, 0.5
    assert model._get_llm_string() != key
    model.temperature = None
    assert model._get_llm_string() == key
