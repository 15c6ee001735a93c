"""proposal_quorum and layer_deadline: which proposals are used, that the rest really stop."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from langchain_moa import AggregatorError, MoAChatModel
from langchain_moa.fakes import CallTally, ScriptedChatModel


def _moa(
    sleeps: list[float], **fields: Any
) -> tuple[MoAChatModel, list[ScriptedChatModel], ScriptedChatModel]:
    proposers = [
        ScriptedChatModel(answer=f"answer {i}", model_name=f"p{i}", sleep=s) for i, s in enumerate(sleeps)
    ]
    aggregator = ScriptedChatModel(answer="final")
    return MoAChatModel(proposers=proposers, aggregator=aggregator, **fields), proposers, aggregator


async def test_quorum_aggregates_the_first_answers_and_cancels_the_rest() -> None:
    moa, proposers, aggregator = _moa([0.05, 5.0, 0.1, 0.15], proposal_quorum=3)
    started = time.perf_counter()
    result = await moa.ainvoke("Q")
    assert time.perf_counter() - started < 1.5
    layer = result.response_metadata["moa"]["layers"][0]
    assert [p["cut"] for p in layer] == [False, True, False, False]
    assert layer[1]["error"] == "cut: 3 proposals were in (proposal_quorum=3)"
    assert aggregator.calls[0]["messages"][0].content.endswith("\n1. answer 0\n2. answer 2\n3. answer 3")
    assert (proposers[1].tally.cancelled, proposers[1].tally.finished) == (1, 0)
    assert asyncio.all_tasks() == {asyncio.current_task()}  # nothing left running


def test_quorum_on_the_sync_path() -> None:
    moa, _, aggregator = _moa([0.05, 0.1, 3.0], proposal_quorum=2)
    started = time.perf_counter()
    result = moa.invoke("Q")
    assert time.perf_counter() - started < 1.5
    assert [p["cut"] for p in result.response_metadata["moa"]["layers"][0]] == [False, False, True]
    assert aggregator.calls[0]["messages"][0].content.endswith("\n1. answer 0\n2. answer 1")


async def test_deadline_goes_on_with_what_has_arrived() -> None:
    moa, proposers, _ = _moa([0.05, 0.1, 3.0, 3.0], layer_deadline=0.5)
    started = time.perf_counter()
    result = await moa.ainvoke("Q")
    elapsed = time.perf_counter() - started
    assert 0.5 <= elapsed < 1.5
    layer = result.response_metadata["moa"]["layers"][0]
    assert [p["cut"] for p in layer] == [False, False, True, True]
    assert layer[3]["error"] == "cut: layer_deadline of 0.5s passed with 2 proposals in"
    assert [p.tally.cancelled for p in proposers] == [0, 0, 1, 1]


async def test_past_the_deadline_the_layer_waits_for_min_proposals() -> None:
    moa, _, _ = _moa([0.8, 3.0, 3.0], layer_deadline=0.2, min_proposals=1)
    started = time.perf_counter()
    result = await moa.ainvoke("Q")
    assert 0.8 <= time.perf_counter() - started < 2.0
    assert [p["cut"] for p in result.response_metadata["moa"]["layers"][0]] == [False, True, True]


async def test_quorum_in_every_layer() -> None:
    moa, proposers, _ = _moa([0.05, 0.1, 2.0], layers=3, proposal_quorum=2)
    result = await moa.ainvoke("Q")
    layers = result.response_metadata["moa"]["layers"]
    assert [[p["cut"] for p in layer] for layer in layers] == [[False, False, True]] * 2
    # Layer 2 saw the two answers layer 1 kept.
    assert proposers[0].calls[1]["messages"][0].content.endswith("\n1. answer 0\n2. answer 1")
    assert proposers[2].tally.cancelled == 2


def test_without_quorum_or_deadline_every_proposal_is_awaited() -> None:
    moa, _, _ = _moa([0.05, 0.3])
    result = moa.invoke("Q")
    assert [p["cut"] for p in result.response_metadata["moa"]["layers"][0]] == [False, False]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"proposal_quorum": 4},
            "proposal_quorum must be between min_proposals (1) and the number of proposers (3), got 4",
        ),
        ({"proposal_quorum": 1, "min_proposals": 2}, "got 1"),
        (
            {"layer_deadline": 0},
            "layer_deadline must be a positive number of seconds, or unset (no limit), got 0",
        ),
    ],
)
def test_bad_quorum_and_deadline_values(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _moa([0.0, 0.0, 0.0], **fields)


async def test_a_models_own_timeout_is_not_mistaken_for_aggregator_timeout() -> None:
    moa = MoAChatModel(
        proposers=[ScriptedChatModel(answer="idea")],
        aggregator=ScriptedChatModel(answer=TimeoutError("upstream read timed out"), model_name="agg"),
    )
    with pytest.raises(
        AggregatorError, match="aggregator \\(agg\\) failed: TimeoutError: upstream read timed out"
    ):
        await moa.ainvoke("Q")


def test_a_sync_call_cut_by_its_timeout_leaves_no_model_call_running() -> None:
    # Sync calls drive the async core: a timed-out proposer is cancelled, not abandoned to a thread.
    tally = CallTally()
    slow = [ScriptedChatModel(answer="slow", sleep=0.6, tally=tally) for _ in range(3)]
    moa = MoAChatModel(
        proposers=[ScriptedChatModel(answer="quick", tally=tally), *slow],
        aggregator=ScriptedChatModel(answer="ok"),
        proposer_timeout=0.2,
        max_concurrency=2,
    )
    result = moa.invoke("Q")
    assert tally.running == 0  # nothing left behind when invoke returns
    assert tally.cancelled == 3 and tally.peak <= 2
    layer = result.response_metadata["moa"]["layers"][0]
    assert [p["error"] for p in layer[1:]] == ["TimeoutError: no answer within 0.2s (proposer_timeout)"] * 3


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
