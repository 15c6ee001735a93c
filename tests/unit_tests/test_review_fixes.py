"""Behaviours a review found missing: reserved characters in names, cache keys, live configuration,
usage of empty answers, the model's own timeouts, and call slots held by abandoned sync calls."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from langchain_moa import AggregatorError, MoAChatModel
from langchain_moa.fakes import ScriptedChatModel


def test_model_names_with_colons_make_valid_node_names() -> None:
    moa = MoAChatModel(
        proposers=[ScriptedChatModel(model_name="llama3.1:8b")], aggregator=ScriptedChatModel(answer="ok")
    )
    assert "layer 1 #1 llama3.1-8b" in moa.graph.nodes
    result = moa.invoke("Q")
    assert result.response_metadata["moa"]["layers"][0][0]["model"] == "llama3.1:8b"


@pytest.mark.parametrize(
    "change",
    [
        {"proposal_quorum": 1},
        {"layer_deadline": 5.0},
        {"min_proposals": 2},
        {"proposer_timeout": 9.0},
        {"max_retries": 3},
    ],
)
def test_every_answer_changing_field_is_in_the_cache_key(change: dict[str, Any]) -> None:
    fields = {
        "proposers": [ScriptedChatModel(model_name="a"), ScriptedChatModel(model_name="b")],
        "aggregator": ScriptedChatModel(),
    }
    assert MoAChatModel(**fields)._get_llm_string() != MoAChatModel(**fields, **change)._get_llm_string()


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


async def test_a_models_own_timeout_is_not_mistaken_for_aggregator_timeout() -> None:
    moa = MoAChatModel(
        proposers=[ScriptedChatModel(answer="idea")],
        aggregator=ScriptedChatModel(answer=TimeoutError("upstream read timed out"), model_name="agg"),
    )
    with pytest.raises(
        AggregatorError, match="aggregator \\(agg\\) failed: TimeoutError: upstream read timed out"
    ):
        await moa.ainvoke("Q")


def test_a_sync_call_given_up_on_keeps_its_slot_until_it_ends() -> None:
    running = peak = 0
    lock = threading.Lock()

    class Counted(ScriptedChatModel):
        def _generate(self, *args: Any, **kwargs: Any) -> Any:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            try:
                return super()._generate(*args, **kwargs)
            finally:
                with lock:
                    running -= 1

    slow = [Counted(answer="slow", sleep=0.6) for _ in range(3)]
    moa = MoAChatModel(
        proposers=slow,
        aggregator=Counted(answer="ok"),
        proposer_timeout=0.2,
        max_concurrency=1,
        min_proposals=1,
    )
    with pytest.raises(Exception, match="proposer_timeout"):
        moa.invoke("Q")
    time.sleep(2.0)  # let the abandoned calls end
    assert peak == 1


def test_an_event_loop_left_behind_has_no_pending_waiters() -> None:
    moa = MoAChatModel(
        proposers=[ScriptedChatModel(answer="a", sleep=0.05), ScriptedChatModel(answer="b", sleep=5)],
        aggregator=ScriptedChatModel(answer="ok"),
        proposal_quorum=1,
    )

    async def main() -> None:
        call = asyncio.ensure_future(moa.ainvoke("Q"))
        await asyncio.sleep(0.01)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await asyncio.sleep(0)
        assert asyncio.all_tasks() == {asyncio.current_task()}

    asyncio.run(main())
