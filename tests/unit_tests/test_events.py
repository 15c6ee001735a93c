"""The run events: what an observer of a MoAChatModel call sees, in order, and only its own."""

from __future__ import annotations

import asyncio

from langchain_moa import MoAChatModel, observe
from langchain_moa.events import AggregatorStarted, Answer, MoAEvent, ProposalReady, ProposerStarted, Token
from langchain_moa.fakes import ScriptedChatModel


def _moa(**fields: object) -> MoAChatModel:
    proposers = [ScriptedChatModel(answer=f"idea {i}", model_name=f"p{i}") for i in range(2)]
    return MoAChatModel(proposers=proposers, aggregator=ScriptedChatModel(answer="the answer"), **fields)


def test_an_observer_sees_every_event_of_invoke_in_order_and_the_answer_once() -> None:
    seen: list[MoAEvent] = []
    moa = _moa(layers=3)
    with observe(seen.append):
        result = moa.invoke("Q")
    kinds = [e.kind for e in seen]
    assert kinds.count("proposer_started") == 4 and kinds.count("proposal") == 4
    assert kinds[-5:] == ["aggregator_started", "token", "token", "token", "answer"]
    assert isinstance(seen[0], ProposerStarted) and isinstance(seen[-5], AggregatorStarted)
    assert [e.proposal["layer"] for e in seen if isinstance(e, ProposalReady)] == [1, 1, 2, 2]
    (answer,) = [e for e in seen if isinstance(e, Answer)]
    assert answer.message.text == result.text == "".join(e.chunk.text for e in seen if isinstance(e, Token))
    assert answer.message.response_metadata["moa"] == result.response_metadata["moa"]
    moa.invoke("again")  # outside the block: nobody is told
    assert len([e for e in seen if isinstance(e, Answer)]) == 1


async def test_async_calls_and_streams_report_the_same_events() -> None:
    moa = _moa()
    by_call: list[list[str]] = []
    for run in (lambda: moa.ainvoke("Q"), lambda: _drain(moa.astream("Q"))):
        seen: list[MoAEvent] = []
        with observe(seen.append):
            await run()
        by_call.append([e.kind for e in seen])
    assert sorted(by_call[0]) == sorted(by_call[1])
    assert by_call[0][-1] == by_call[1][-1] == "answer"


async def _drain(stream: object) -> None:
    async for _ in stream:  # type: ignore[attr-defined]
        pass


def test_a_moa_inside_a_moa_reports_only_to_its_own_graph() -> None:
    inner = _moa()
    outer = MoAChatModel(proposers=[inner], aggregator=ScriptedChatModel(answer="outer answer"))
    seen: list[MoAEvent] = []
    with observe(seen.append):
        outer.invoke("Q")
    answers = [e.message.text for e in seen if isinstance(e, Answer)]
    assert answers == ["outer answer"]  # the inner MoA's events are not the outer call's
    assert [e.proposal["model"] for e in seen if isinstance(e, ProposalReady)] == ["moa"]


def test_observers_do_not_leak_into_other_tasks() -> None:
    seen: list[MoAEvent] = []

    async def main() -> None:
        with observe(seen.append):
            watched = asyncio.create_task(_moa().ainvoke("Q"))
        await asyncio.gather(watched, _moa().ainvoke("unwatched"))

    asyncio.run(main())
    assert len([e for e in seen if isinstance(e, Answer)]) == 1


def test_an_observer_that_asks_for_proposal_text_sees_every_proposal_written_token_by_token() -> None:
    from langchain_moa.events import ProposalChunk

    moa = _moa(layers=3)
    seen: list[MoAEvent] = []
    with observe(seen.append, proposal_text=True):
        answer = moa.invoke("Q")
    chunks = [e for e in seen if isinstance(e, ProposalChunk)]
    for proposal in (e.proposal for e in seen if isinstance(e, ProposalReady)):
        own = [c for c in chunks if c.node == proposal["node"]]
        assert {(c.layer, c.index) for c in own} == {(proposal["layer"], proposal["index"])}
        assert "".join(c.text for c in own) == proposal["content"] and len(own) == 2  # "idea", " N"
    assert len(chunks) == 8
    inner: list[MoAEvent] = []
    with observe(inner.append):  # not asked: the proposers are not streamed, and answer alike
        plain = moa.invoke("Q")
    assert not [e for e in inner if isinstance(e, ProposalChunk)]
    same = [
        [{k: v for k, v in p.items() if k != "latency_s"} for p in layer]
        for message in (plain, answer)
        for layer in message.response_metadata["moa"]["layers"]
    ]
    assert same[: len(same) // 2] == same[len(same) // 2 :] and plain.usage_metadata == answer.usage_metadata
