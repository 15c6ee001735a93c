"""Staircase aggregation: the aggregator writes while the last layer's proposals stream in."""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.ai import add_usage

from langchain_moa import AggregatorError, MoAChatModel, MoAConfigError, MoAError
from langchain_moa.events import AggregatorRound, ProposalChunk, ProposalReady, Token, observe
from langchain_moa.fakes import BrokenStream, CallTally, Delayed, ScriptedChatModel
from langchain_moa.prompts import AGGREGATOR_PROMPT
from langchain_moa.staircase import CONTINUE_PROMPT, FINISH_PROMPT, GO_ON, joined, replay


def _words(n: int, stem: str) -> str:
    return " ".join(f"{stem}{i}" for i in range(n))


def _moa(
    n: int = 3, words: int = 24, *, delay: float = 0.01, tally: CallTally | None = None, **fields: Any
) -> tuple[MoAChatModel, list[ScriptedChatModel], ScriptedChatModel]:
    tally = tally or CallTally()
    proposers = [
        ScriptedChatModel(answer=_words(words, f"p{k}w"), token_delay=delay, model_name=f"p{k}", tally=tally)
        for k in range(n)
    ]
    aggregator = ScriptedChatModel(answer=_words(60, "a"), token_delay=delay / 4, model_name="agg")
    fields = {"staircase": 8, "max_tokens": 40, **fields}
    return MoAChatModel(proposers=proposers, aggregator=aggregator, **fields), proposers, aggregator


async def test_the_first_token_comes_before_the_proposals_are_complete() -> None:
    moa, _, _ = _moa()
    seen: list[Any] = []
    with observe(seen.append):
        answer = await moa.ainvoke("Q")
    first_token = next(i for i, e in enumerate(seen) if isinstance(e, Token))
    last_proposal = max(i for i, e in enumerate(seen) if isinstance(e, ProposalReady))
    assert first_token < last_proposal
    assert answer.response_metadata["moa"]["staircase"]["rounds"][0]["complete"] is False


def _is_the_papers_prompt_with_the_first_chunks(first: list[Any]) -> None:
    """Round 1, in either layout: the paper's prompt with each proposal's first 8 words, then "Q"."""
    assert first[0].content == (
        "Be brief.\n\n" + AGGREGATOR_PROMPT + "".join(f"\n{k + 1}. {_words(8, f'p{k}w')}" for k in range(3))
    )
    assert [(m.type, m.text) for m in first[1:]] == [("human", "Q")]


async def test_round_one_is_the_papers_prompt_and_later_rounds_only_append() -> None:
    moa, _, aggregator = _moa()
    answer = await moa.ainvoke([SystemMessage("Be brief."), HumanMessage("Q")])
    calls = [c["messages"] for c in aggregator.calls]
    assert len(calls) >= 2
    _is_the_papers_prompt_with_the_first_chunks(calls[0])
    for before, after in itertools.pairwise(calls):
        assert after[: len(before)] == before  # a prefix cache reuses every earlier round
        assert isinstance(after[len(before)], AIMessage)
        continuation = after[-1]
        assert isinstance(continuation, HumanMessage)
        assert continuation.content.startswith(CONTINUE_PROMPT + "\n1. p0w") or continuation.content in (
            GO_ON,
            FINISH_PROMPT,  # a round with nothing new
        )
    assert calls[-1][-1].content.endswith(FINISH_PROMPT)
    assert all(c[-1].content.endswith(GO_ON) for c in calls[1:-1])
    rounds = answer.response_metadata["moa"]["staircase"]["rounds"]
    assert len(rounds) == len(calls) and rounds[-1]["complete"]
    assert [sum(r["took_tokens"][k] for r in rounds) for k in range(3)] == [24, 24, 24]


def _continuing(answer: str) -> Any:
    """A model that continues an unfinished assistant message, as llama.cpp's server does."""

    def respond(messages: list[Any], _: dict[str, Any]) -> str:
        begun = messages[-1].text if isinstance(messages[-1], AIMessage) else ""
        assert answer.startswith(begun), "the answer so far was changed"
        return answer[len(begun) :]

    return respond


async def test_prefill_rounds_append_the_references_and_end_with_the_answer_to_continue() -> None:
    moa, _, _ = _moa()
    aggregator = ScriptedChatModel(respond=_continuing(_words(60, "a")), model_name="agg")
    moa = moa.model_copy(update={"aggregator": aggregator, "staircase_layout": "prefill"})
    answer = await moa.ainvoke([SystemMessage("Be brief."), HumanMessage("Q")])
    assert answer.response_metadata["moa"]["staircase"]["layout"] == "prefill"
    calls = [c["messages"] for c in aggregator.calls]
    assert len(calls) >= 3
    _is_the_papers_prompt_with_the_first_chunks(calls[0])
    for before, after in itertools.pairwise(calls):
        *earlier, continued = after
        assert isinstance(continued, AIMessage)  # the answer so far, last
        assert answer.text.startswith(continued.text)
        references = before[:-1] if isinstance(before[-1], AIMessage) else before
        assert earlier[: len(references)] == references  # a prefix cache reuses all but the newest
        (new,) = earlier[len(references) :]
        assert isinstance(new, HumanMessage)
        assert new.content.startswith(CONTINUE_PROMPT) or new.content in (GO_ON, FINISH_PROMPT)
    assert calls[-1][-2].content.endswith(FINISH_PROMPT)
    assert answer.text == _words(40, "a")  # continued, never begun again, no space added or lost


async def test_auto_layout_is_turns_for_a_model_not_known_to_continue() -> None:
    moa, _, _ = _moa()
    assert moa.staircase_layout == "auto"
    answer = await moa.ainvoke("Q")
    assert answer.response_metadata["moa"]["staircase"]["layout"] == "turns"


async def test_a_chunk_longer_than_the_proposals_is_the_papers_moa_exactly() -> None:
    staircase, _, aggregator = _moa(staircase=100)
    standard, _, plain_aggregator = _moa(staircase=None)
    await staircase.ainvoke("Q")
    await standard.ainvoke("Q")

    def seen(model: ScriptedChatModel) -> list[list[tuple[str, str]]]:
        return [[(m.type, m.text) for m in c["messages"]] for c in model.calls]

    assert len(aggregator.calls) == 1
    assert seen(aggregator) == seen(plain_aggregator)


async def test_usage_is_every_proposer_and_every_round_once() -> None:
    moa, proposers, aggregator = _moa()
    answer = await moa.ainvoke("Q")
    rounds = len(aggregator.calls)
    prompts = [" ".join(m.text for m in c["messages"]) for c in aggregator.calls]
    aggregator_in = sum(len(p.split()) for p in prompts)
    expected_in = 3 * 1 + aggregator_in
    assert answer.usage_metadata is not None
    assert answer.usage_metadata["input_tokens"] == expected_in
    assert answer.usage_metadata["output_tokens"] == 3 * 24 + 40  # the answer is max_tokens long
    assert rounds >= 2
    layer = answer.response_metadata["moa"]["layers"][-1]
    assert [p["content"] for p in layer] == [_words(24, f"p{k}w") for k in range(3)]
    proposer_usage = functools.reduce(add_usage, [p["usage"] for p in layer])
    assert proposer_usage["output_tokens"] == 72
    assert len(proposers[0].calls) == 1


def test_the_answer_is_the_rounds_joined_on_the_sync_path_too() -> None:
    moa, _, _ = _moa()
    streamed = list(moa.stream("Q"))
    text = "".join(c.text for c in streamed)
    assert len(text.split()) == 40
    assert "  " not in text and not text.startswith(" ")
    assert streamed[-1].response_metadata["moa"]["staircase"]["chunk"] == 8
    assert streamed[-1].response_metadata["finish_reason"] == "length"


def test_joined_puts_a_space_only_where_two_words_would_touch() -> None:
    assert joined("the sky is", "blue") == " blue"
    assert joined("the sky is ", "blue") == "blue"
    assert joined("the sky is", ", blue") == ", blue"
    assert joined("", "blue") == "blue"
    assert joined("line", "\nnext") == "\nnext"


async def test_the_live_view_gets_proposal_chunks_and_rounds() -> None:
    moa, _, _ = _moa(n=2, words=16)
    seen: list[Any] = []
    with observe(seen.append):
        await moa.ainvoke("Q")
    chunks = [e for e in seen if isinstance(e, ProposalChunk)]
    assert sorted({(e.index, e.node) for e in chunks}) == [(1, "layer 1 #1 p0"), (2, "layer 1 #2 p1")]
    assert "".join(e.text for e in chunks if e.index == 1) == _words(16, "p0w")
    rounds = [e for e in seen if isinstance(e, AggregatorRound)]
    assert [r.round for r in rounds] == list(range(1, len(rounds) + 1)) and rounds[-1].complete


async def test_a_proposer_failing_half_way_leaves_the_rounds_to_the_others() -> None:
    moa, proposers, aggregator = _moa()
    proposers[1].answer = BrokenStream(_words(24, "p1w"), 12, ConnectionResetError("stream broke"))
    answer = await moa.ainvoke("Q")
    layer = answer.response_metadata["moa"]["layers"][-1]
    assert layer[1]["content"] is None and "ConnectionResetError: stream broke" in layer[1]["error"]
    assert "p1w0" in aggregator.calls[0]["messages"][0].content  # its first chunk was taken in
    later = " ".join(c["messages"][-1].content for c in aggregator.calls[2:])
    assert "p1w" not in later and "p0w" in later
    rounds = answer.response_metadata["moa"]["staircase"]["rounds"]
    assert sum(r["took_tokens"][1] for r in rounds) == 12


async def test_too_few_proposals_fail_before_any_aggregator_call() -> None:
    moa, proposers, aggregator = _moa(min_proposals=2)
    for p in proposers[1:]:
        p.answer = RuntimeError("upstream 503")
    with pytest.raises(MoAError, match=r"1 proposals with text, fewer than min_proposals=2.*upstream 503"):
        await moa.ainvoke("Q")
    assert aggregator.calls == []


async def test_quorum_cuts_a_hung_proposer_and_the_rounds_go_on() -> None:
    moa, proposers, _ = _moa(proposal_quorum=2)
    proposers[2].answer = Delayed(3600, "too late")
    answer = await asyncio.wait_for(moa.ainvoke("Q"), timeout=10)
    layer = answer.response_metadata["moa"]["layers"][-1]
    assert [p["cut"] for p in layer] == [False, False, True]
    assert (proposers[2].tally.running, answer.text.count("a")) == (0, 40)


async def test_the_aggregator_budget_spent_early_stops_the_proposers() -> None:
    moa, proposers, aggregator = _moa(words=200, max_tokens=16, proposer_max_tokens=200)
    answer = await asyncio.wait_for(moa.ainvoke("Q"), timeout=10)
    assert len(answer.text.split()) == 16
    layer = answer.response_metadata["moa"]["layers"][-1]
    assert all(p["cut"] and "max_tokens" in p["error"] for p in layer)
    assert proposers[0].tally.running == 0 and proposers[0].tally.cancelled == 3
    assert len(aggregator.calls) == 2


async def test_cancelling_mid_rounds_stops_every_call() -> None:
    tally = CallTally()
    moa, _, aggregator = _moa(words=400, delay=0.02, tally=tally, max_tokens=None)
    aggregator.tally = tally
    call = asyncio.ensure_future(moa.ainvoke("Q"))
    while len(aggregator.calls) < 2:
        await asyncio.sleep(0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.sleep(0.05)
    assert tally.running == 0 and tally.cancelled >= 3
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_the_aggregator_timeout_bounds_the_rounds() -> None:
    moa, _, _ = _moa(words=400, delay=0.02, max_tokens=None, aggregator_timeout=0.3)
    with pytest.raises(AggregatorError, match="aggregator_timeout"):
        await moa.ainvoke("Q")


async def test_tools_are_refused_with_the_reason() -> None:
    moa, _, aggregator = _moa()

    def lookup(city: str) -> str:
        """Weather in a city."""
        return city

    with pytest.raises(AggregatorError, match=r"staircase .* cannot call tools .* leave staircase unset"):
        await moa.bind_tools([lookup]).ainvoke("Q")
    assert aggregator.calls == []


async def test_shuffle_keeps_each_proposers_number_across_rounds() -> None:
    moa, _, aggregator = _moa(aggregation="shuffle", seed=3)
    answer = await moa.ainvoke("Q")
    order = answer.response_metadata["moa"]["aggregation"]["order"]
    assert sorted(order) == [1, 2, 3]
    for call in aggregator.calls[1:]:
        continuation = call["messages"][-1].content
        if not continuation.startswith(CONTINUE_PROMPT):
            continue  # a last round with nothing new
        for position, proposer in enumerate(order, start=1):
            assert f"\n{position}. p{proposer - 1}w" in continuation


async def test_three_layers_stream_only_the_last() -> None:
    moa, proposers, aggregator = _moa(layers=3)
    answer = await moa.ainvoke("Q")
    assert len(answer.response_metadata["moa"]["layers"]) == 2
    second_layer_prompt = proposers[0].calls[1]["messages"][0].content
    assert second_layer_prompt.endswith(f"\n3. {_words(24, 'p2w')}")  # layer 1 was whole
    assert len(aggregator.calls) >= 2


async def test_proposer_max_tokens_limits_the_proposals_alone() -> None:
    moa, proposers, aggregator = _moa(staircase=None, proposer_max_tokens=5, max_tokens=30)
    answer = await moa.ainvoke("Q")
    assert [p.calls[0]["kwargs"]["max_tokens"] for p in proposers] == [5, 5, 5]
    assert aggregator.calls[0]["kwargs"]["max_tokens"] == 30
    assert len(answer.text.split()) == 30


async def test_a_turns_reused_proposals_are_aggregated_whole() -> None:
    moa, proposers, aggregator = _moa(fanout="turn")
    first = await moa.ainvoke("Q")
    called = first.model_copy(update={"tool_calls": [{"name": "f", "args": {}, "id": "1"}]})
    second = await moa.ainvoke([HumanMessage("Q"), called, ToolMessage("result", tool_call_id="1")])
    assert "staircase" in first.response_metadata["moa"]
    assert "staircase" not in second.response_metadata["moa"]
    assert len(proposers[0].calls) == 1  # the same turn: its proposals were reused, whole
    assert aggregator.calls[-1]["messages"][0].content.endswith(_words(24, "p2w"))


def test_the_graph_draws_the_aggregator_beside_the_last_layer() -> None:
    moa, _, _ = _moa(n=2, layers=3)
    edges = {(e.source, e.target) for e in moa.graph.get_graph().edges}
    assert ("layer 1 #1 p0", "aggregator") in edges
    assert ("layer 1 #1 p0", "layer 2 #1 p0") in edges
    assert ("layer 2 #1 p0", "__end__") in edges
    assert ("layer 2 #1 p0", "aggregator") not in edges


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"staircase": 0}, "staircase must be an integer >= 1 (tokens per chunk), or unset (off), got 0"),
        ({"staircase": 2.5}, "staircase must be an integer >= 1"),
        ({"staircase": "8"}, "staircase must be an integer >= 1"),
        ({"staircase": True}, "staircase must be an integer >= 1"),
        ({"proposer_max_tokens": 0}, "proposer_max_tokens must be an integer >= 1"),
        (
            {"staircase_layout": "continue"},
            "staircase_layout must be 'auto', 'prefill' or 'turns', got 'continue'",
        ),
        ({"staircase_layout": None}, "staircase_layout must be 'auto', 'prefill' or 'turns', got None"),
        ({"staircase": 8, "aggregation": "select"}, "staircase cannot be combined with aggregation='select'"),
        ({"staircase": 8, "aggregation": "majority"}, "needs whole proposals"),
    ],
)
def test_bad_values_fail_at_construction(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(MoAConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        MoAChatModel(proposers=[ScriptedChatModel()], aggregator=ScriptedChatModel(), **fields)


def test_staircase_changes_the_cache_key() -> None:
    one, _, _ = _moa(staircase=8)
    other, _, _ = _moa(staircase=16)
    assert one._identifying_params != other._identifying_params


async def test_replay_feeds_journalled_proposals_in_lockstep_rounds() -> None:
    aggregator = ScriptedChatModel(answer=_words(30, "a"))
    proposals = [_words(20, "x"), _words(12, "y")]
    text, record, chunks = await replay(
        aggregator, [HumanMessage("Q")], proposals, chunk=8, prompt=AGGREGATOR_PROMPT, max_tokens=24
    )
    assert [r["took_tokens"] for r in record["rounds"]] == [[8, 8], [8, 4], [4, 0]]
    assert [r["complete"] for r in record["rounds"]] == [False, False, True]
    first = aggregator.calls[0]["messages"][0].content
    assert first.endswith(f"\n1. {_words(8, 'x')}\n2. {_words(8, 'y')}")
    assert len(text.split()) == 24 and sum(1 for c in chunks if c.usage_metadata) == 3
    assert record["layout"] == "turns"


async def test_replay_in_the_prefill_layout_continues_one_answer() -> None:
    aggregator = ScriptedChatModel(respond=_continuing(_words(30, "a")))
    proposals = [_words(20, "x"), _words(12, "y")]
    text, record, _ = await replay(
        aggregator, [HumanMessage("Q")], proposals, chunk=8, prompt=AGGREGATOR_PROMPT, layout="prefill",
        max_tokens=24,
    )  # fmt: skip
    assert record["layout"] == "prefill" and len(record["rounds"]) == 3
    assert text == _words(24, "a")
    last = aggregator.calls[-1]["messages"]
    assert last[0].content.endswith(f"\n1. {_words(8, 'x')}\n2. {_words(8, 'y')}")
    assert last[-1] == AIMessage(_words(16, "a"))


def test_exact_scores_the_fast_paths_on_the_same_proposals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from langchain_moa import cli

    made: list[ScriptedChatModel] = []

    def resolve(spec: Any, **_: Any) -> Any:
        if spec == "agg":  # right only when it has seen a proposal's last words
            model = ScriptedChatModel(
                respond=lambda m, k: "42" if "so 42" in str([x.text for x in m]) else "41"
            )
        else:
            model = ScriptedChatModel(answer=_words(20, "step") + " so 42")
        made.append(model)
        return model

    monkeypatch.setattr("langchain_moa.graph.resolve_chat_model", resolve)
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"question": f"q{i}", "answer": "42"}) + "\n" for i in range(3)))
    args = ["eval", "exact", "--questions", str(questions), "-o", str(tmp_path / "out.jsonl"), "--quiet",
            "--reference-models", "p1,p2", "--aggregator", "agg",
            "--strategies", "staircase=8,staircase=8:prefill,proposer_max_tokens=10"]  # fmt: skip
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    rows = {line.split("\t")[0]: line.split("\t") for line in result.stdout.splitlines()}
    assert rows["MoA (staircase=8)"][1].startswith("100.0%")  # the last round saw the end
    assert rows["MoA (proposer_max_tokens=10)"][1].startswith("0.0%")  # cut before "so 42"
    journal = [json.loads(line) for line in (tmp_path / "out.jsonl.strategies.jsonl").open()]
    layouts = {(r["key"].split("|")[1], r["note"]["layout"]) for r in journal if "staircase" in r["key"]}
    assert layouts == {("staircase=8", "turns"), ("staircase=8:prefill", "prefill")}  # "auto": turns here
    calls = sum(len(m.calls) for m in made)
    for spec in ("staircase=0", "staircase=8:sideways", "proposer_max_tokens=8:prefill"):
        bad = CliRunner().invoke(cli.app, [*args[:-1], spec])
        assert bad.exit_code != 0 and f"unknown aggregation {spec!r}" in bad.stderr
    assert sum(len(m.calls) for m in made) == calls  # refused before any model ran
