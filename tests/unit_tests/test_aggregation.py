"""Aggregation strategies with scripted models: prompts, order, verbatim selection, fallback, metadata."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from langchain_moa import AGGREGATOR_PROMPT, AggregatorError, MoAChatModel, MoAConfigError, cli
from langchain_moa.aggregation import BUILT_IN, Given, Plan, Strategy, strategy_of
from langchain_moa.fakes import ScriptedChatModel

IDEAS = ["It is 42.", "I get 41.", "The answer: 42"]


def _moa(aggregator: ScriptedChatModel, **fields: Any) -> tuple[MoAChatModel, list[ScriptedChatModel]]:
    proposers = [ScriptedChatModel(answer=idea, model_name=f"p{i}") for i, idea in enumerate(IDEAS)]
    return MoAChatModel(proposers=proposers, aggregator=aggregator, **fields), proposers


def _references(prompt: str) -> list[str]:
    return re.findall(r"^\d+\. (.*)$", prompt, flags=re.MULTILINE)


def test_synthesize_is_the_papers_prompt_in_proposer_order() -> None:
    aggregator = ScriptedChatModel(answer="42")
    moa, _ = _moa(aggregator)
    result = moa.invoke("Q")
    assert aggregator.calls[0]["messages"][0].content == AGGREGATOR_PROMPT + "".join(
        f"\n{i}. {idea}" for i, idea in enumerate(IDEAS, start=1)
    )
    assert "aggregation" not in result.response_metadata["moa"]


def test_shuffle_records_a_fresh_order_each_call_and_a_seed_repeats_them() -> None:
    def orders(seed: int | None) -> list[list[int]]:
        aggregator = ScriptedChatModel(answer="42")
        moa, _ = _moa(aggregator, aggregation="shuffle", seed=seed)
        recorded = [moa.invoke("Q").response_metadata["moa"]["aggregation"]["order"] for _ in range(8)]
        for call, order in zip(aggregator.calls, recorded, strict=True):
            assert call["messages"][0].content.startswith(AGGREGATOR_PROMPT)
            assert _references(call["messages"][0].content) == [IDEAS[i - 1] for i in order]
        return recorded

    first = orders(7)
    assert all(sorted(order) == [1, 2, 3] for order in first)
    assert len({tuple(order) for order in first}) > 1  # fresh orders, not one fixed permutation
    assert orders(7) == first  # reproducible with a seed


def test_models_that_differ_only_in_their_seed_share_one_graph_and_keep_their_own_orders() -> None:
    # A server makes a variant per request seed: building a graph for each would halve its throughput.
    from langchain_moa.server.registry import ModelRegistry

    aggregator = ScriptedChatModel(answer="42")
    base, _ = _moa(aggregator, aggregation="shuffle")
    registry = ModelRegistry({"m": lambda: base})
    variants = [registry.get("m", {"seed": seed}) for seed in (1, 2, 1)]
    assert all(v.graph is base.graph for v in variants)

    def order(moa: MoAChatModel) -> list[int]:
        return moa.invoke("Q").response_metadata["moa"]["aggregation"]["order"]

    fresh = [_moa(aggregator, aggregation="shuffle", seed=seed)[0] for seed in (1, 2)]
    expected = [[order(fresh[0]) for _ in range(3)], [order(fresh[1]) for _ in range(3)]]
    assert [[order(variants[0]) for _ in range(3)], [order(variants[1]) for _ in range(3)]] == expected
    with pytest.raises(MoAConfigError, match="seed must be an integer"):
        registry.get("m", {"seed": "x"})


def test_select_returns_the_named_proposal_verbatim() -> None:
    aggregator = ScriptedChatModel(answer="Response 3 is the most consistent.")
    moa, _ = _moa(aggregator, aggregation="select")
    result = moa.invoke("What is 6*7?")
    assert result.text == "The answer: 42"
    assert result.response_metadata["moa"]["aggregation"] == {
        "strategy": "select",
        "chosen": 3,
        "fallback": False,
    }
    assert "Reply with the number of that response only" in aggregator.calls[0]["messages"][0].content


def test_select_falls_back_to_the_proposal_that_agrees_most_and_says_so() -> None:
    aggregator = ScriptedChatModel(answer="I cannot decide.")
    proposers = [
        ScriptedChatModel(answer=a) for a in ("the sum is 42", "the sum is 42 indeed", "no idea at all")
    ]
    result = MoAChatModel(proposers=proposers, aggregator=aggregator, aggregation="select").invoke("Q")
    record = result.response_metadata["moa"]["aggregation"]
    assert record["fallback"] is True and record["reply"] == "I cannot decide."
    assert result.text in {"the sum is 42", "the sum is 42 indeed"}


def test_tally_tells_the_aggregator_how_many_proposals_give_each_answer() -> None:
    aggregator = ScriptedChatModel(answer="42")
    moa, _ = _moa(aggregator, aggregation="tally")
    moa.invoke("What is 6*7?")
    prompt = aggregator.calls[0]["messages"][0].content
    assert prompt.startswith(
        "The responses' final answers, with how many responses give each: '42' (2 of 3), '41' (1 of 3).\n\n"
        + AGGREGATOR_PROMPT
    )
    assert _references(prompt) == IDEAS


def test_majority_returns_a_strict_majoritys_proposal_verbatim_without_the_aggregator() -> None:
    aggregator = ScriptedChatModel(answer="unused")
    answers = ("I get 41.", "6 times 7: the answer is 42.", "Answer: 41", "**Answer:** 42", "\\boxed{42}")
    proposers = [ScriptedChatModel(answer=a) for a in answers]
    result = MoAChatModel(proposers=proposers, aggregator=aggregator, aggregation="majority").invoke("6*7?")
    assert result.text == "6 times 7: the answer is 42."  # the first of the three stating 42
    assert aggregator.calls == []
    assert result.response_metadata["moa"]["aggregation"] == {
        "strategy": "majority",
        "agreeing": 3,
        "of": 5,
        "answer": "42",
        "chosen": 2,
    }


def test_a_settled_majority_streams_its_answer() -> None:
    proposers = [ScriptedChatModel(answer=a) for a in ("Answer: B, Paris.", "Answer: B", "Answer: C")]
    moa = MoAChatModel(proposers=proposers, aggregator=ScriptedChatModel(), aggregation="majority")
    assert "".join(chunk.text for chunk in moa.stream("Capital?")) == "Answer: B, Paris."

    async def streamed() -> str:
        return "".join([chunk.text async for chunk in moa.astream("Capital?")])

    assert asyncio.run(streamed()) == "Answer: B, Paris."


def test_majority_needs_more_than_half_of_the_proposers_not_of_the_survivors() -> None:
    aggregator = ScriptedChatModel(answer="synthesised")
    proposers = [ScriptedChatModel(answer="Answer: 42"), ScriptedChatModel(error=RuntimeError("down"))]
    proposers.append(ScriptedChatModel(error=RuntimeError("down")))
    moa = MoAChatModel(proposers=proposers, aggregator=aggregator, aggregation="majority", min_proposals=1)
    result = moa.invoke("6*7?")
    assert result.text == "synthesised"  # 1 of the 3 proposers is no majority
    assert result.response_metadata["moa"]["aggregation"] == {"strategy": "majority", "agreeing": 1, "of": 3}


def test_majority_never_settles_open_ended_proposals() -> None:
    aggregator = ScriptedChatModel(answer="synthesised")
    moa, _ = _moa(aggregator, aggregation="majority")  # IDEAS state no answer, though two end in 42
    assert moa.invoke("6*7?").text == "synthesised"


def test_majority_without_a_strict_majority_asks_the_paper_prompt() -> None:
    aggregator = ScriptedChatModel(answer="It is 42.")
    proposers = [ScriptedChatModel(answer=a) for a in ("Answer: A", "Answer: B", "Answer: C", "Answer: A")]
    result = MoAChatModel(proposers=proposers, aggregator=aggregator, aggregation="majority").invoke("Q")
    assert aggregator.calls[0]["messages"][0].content.startswith(AGGREGATOR_PROMPT)  # 2 of 4 is no majority
    assert result.text == "It is 42."
    assert result.response_metadata["moa"]["aggregation"] == {"strategy": "majority", "agreeing": 2, "of": 4}


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_custom_aggregation_gets_the_conversation_and_the_proposals(asynchronous: bool) -> None:
    seen: list[Any] = []

    def longest(conversation: list, proposals: list[str]) -> str:
        seen.append((conversation[-1].text, proposals))
        return max(proposals, key=len)

    async def longest_async(conversation: list, proposals: list[str]) -> str:
        return longest(conversation, proposals)

    aggregator = ScriptedChatModel(answer="unused")
    moa, _ = _moa(aggregator, aggregation=longest_async if asynchronous else longest)
    result = asyncio.run(moa.ainvoke("Q")) if asynchronous else moa.invoke("Q")
    assert result.text == "The answer: 42" and seen == [("Q", IDEAS)]
    assert result.response_metadata["moa"]["aggregation"] == {
        "strategy": "longest_async" if asynchronous else "longest"
    }
    assert aggregator.calls == []  # the custom function is the aggregation


def test_an_unknown_strategy_lists_the_choices_and_select_and_majority_refuse_tools() -> None:
    with pytest.raises(
        MoAConfigError,
        match="aggregation must be one of 'synthesize', 'shuffle', 'select', 'tally', 'majority'",
    ):
        _moa(ScriptedChatModel(), aggregation="vote")
    moa, _ = _moa(ScriptedChatModel(answer="1"), aggregation="select")
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    with pytest.raises(AggregatorError, match="aggregation='select' answers with text and cannot call tools"):
        moa.bind_tools([tool]).invoke("Q")
    moa, _ = _moa(ScriptedChatModel(answer="1"), aggregation="majority")
    with pytest.raises(AggregatorError, match="aggregation='majority' answers with text"):
        moa.bind_tools([tool]).invoke("Q")


def test_the_strategy_is_in_the_cache_key_and_the_served_form() -> None:
    from langchain_moa.langgraph_app import MoAConfiguration

    plain, _ = _moa(ScriptedChatModel())
    shuffled, _ = _moa(ScriptedChatModel(), aggregation="shuffle")
    assert plain._get_llm_string() != shuffled._get_llm_string()
    schema = MoAConfiguration.model_json_schema()["properties"]["aggregation"]
    assert schema["anyOf"][0]["enum"] == [
        "synthesize",
        "shuffle",
        "select",
        "tally",
        "majority",
        "confidence",
    ]


def test_exact_compares_strategies_on_the_same_proposals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: dict[str, list[ScriptedChatModel]] = {}

    def resolve(spec: Any, **_: Any) -> Any:
        if not isinstance(spec, str):
            return spec
        if spec == "agg":
            model = ScriptedChatModel(
                respond=lambda m, k: "1" if "number of that response" in m[0].text else "41"
            )
        else:
            model = ScriptedChatModel(
                answer={"p1": "The answer is 42.", "p2": "Answer: 42", "p3": "Answer: 41"}[spec]
            )
        made.setdefault(spec, []).append(model)
        return model

    monkeypatch.setattr("langchain_moa.graph.resolve_chat_model", resolve)
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        "".join(json.dumps({"question": f"6*7? ({i})", "answer": "42"}) + "\n" for i in range(4))
    )
    args = ["eval", "exact", "--questions", str(questions), "-o", str(tmp_path / "out.jsonl"), "--quiet",
            "--reference-models", "p1,p2,p3", "--aggregator", "agg", "--strategies", "select,tally,majority"]  # fmt: skip
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    rows = {line.split("\t")[0]: line.split("\t") for line in result.stdout.splitlines()}
    assert rows["MoA"][1].startswith("0.0%") and rows["MoA (select)"][1].startswith("100.0%")
    assert rows["MoA (tally)"][1].startswith("0.0%")
    assert rows["MoA (majority)"][1].startswith("100.0%")  # 2 of 3 say 42: settled without the aggregator
    # Paired with the majority vote (right on all 4): MoA's 4 misses give p = 2 * 0.5**4.
    assert rows["MoA"][4] == "-100.0 pts (p=0.12)" and rows["MoA (select)"][4] == "+0.0 pts (p=1.00)"
    assert sum(len(m.calls) for name in ("p1", "p2", "p3") for m in made[name]) == 12  # proposals made once
    rerun = CliRunner().invoke(cli.app, args)  # resumes: nothing runs again
    # MoA, select and tally asked the aggregator 4 times each; majority never did.
    assert rerun.exit_code == 0 and sum(len(m.calls) for m in made["agg"]) == 4 + 8


def test_the_drawn_graph_says_which_strategy_the_aggregator_runs() -> None:
    moa, _ = _moa(ScriptedChatModel(), aggregation="tally")
    assert moa.graph.get_graph().nodes["aggregator"].metadata == {"aggregation": "tally"}


# -- a strategy of one's own ---------------------------------------------------------------------


class Longest(Strategy):
    """Answers with the longest proposal, without asking the aggregator."""

    name = "longest"
    calls_tools = False

    def plan(self, given: Given) -> Plan:
        return Plan([], {"strategy": self.name}, settled=max(given.references, key=len))


class Numbered(Strategy):
    """Asks the aggregator for a number and answers with that proposal (a reply that names one)."""

    name = "numbered"
    reply_is_answer = False

    def pick(self, reply: str, references: list[str]) -> tuple[str, dict[str, Any]]:
        return references[int(reply) - 1], {"chosen": int(reply)}


def test_a_strategy_subclass_is_all_it_takes() -> None:
    aggregator = ScriptedChatModel(answer="unused")
    moa = MoAChatModel(
        proposers=[ScriptedChatModel(answer="short"), ScriptedChatModel(answer="the longest one")],
        aggregator=aggregator,
        aggregation=Longest(),
    )
    answer = moa.invoke("Q")
    assert answer.content == "the longest one" and aggregator.calls == []
    assert answer.response_metadata["moa"]["aggregation"] == {"strategy": "longest"}
    assert moa.graph.get_graph().nodes["aggregator"].metadata == {"aggregation": "longest"}
    with pytest.raises(
        AggregatorError, match="aggregation='longest' answers with text and cannot call tools"
    ):
        moa.bind_tools([{"type": "function", "function": {"name": "f", "parameters": {}}}]).invoke("Q")
    with pytest.raises(MoAConfigError, match="staircase cannot be combined with aggregation='longest'"):
        MoAChatModel(
            proposers=[ScriptedChatModel()], aggregator=aggregator, aggregation=Longest(), staircase=8
        )


def test_a_strategy_whose_reply_names_a_proposal() -> None:
    moa = MoAChatModel(
        proposers=[ScriptedChatModel(answer="first"), ScriptedChatModel(answer="second")],
        aggregator=ScriptedChatModel(answer="2"),
        aggregation=Numbered(),
    )
    answer = moa.invoke("Q")
    assert answer.content == "second"
    assert answer.response_metadata["moa"]["aggregation"] == {"strategy": "numbered", "chosen": 2}


def test_the_built_in_strategies_are_instances_that_say_what_they_can_do() -> None:
    assert set(BUILT_IN) == {"synthesize", "shuffle", "select", "tally", "majority", "confidence"}
    assert [n for n, s in BUILT_IN.items() if not s.calls_tools] == ["select", "majority", "confidence"]
    assert [n for n, s in BUILT_IN.items() if s.reads_partial_proposals] == ["synthesize", "shuffle"]
    assert strategy_of(len).name == "len" and not strategy_of(len).calls_tools
