"""Proposal reuse in tool loops: proposers once per user turn (or every N calls), in a real agent loop."""

from __future__ import annotations

import re
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from langchain_moa import MoAChatModel, MoAConfigError
from langchain_moa.fakes import ScriptedChatModel


@tool
def lookup(key: str) -> str:
    """Look a key up."""
    return f"value of {key}"


def _aggregator(tool_calls: int) -> ScriptedChatModel:
    """Calls `lookup` ``tool_calls`` times in a row, then answers with what it saw."""

    def respond(messages: list[BaseMessage], kwargs: dict[str, Any]) -> Any:
        done = sum(isinstance(m, ToolMessage) for m in messages[_last_human(messages) :])
        if done < tool_calls:
            return AIMessage(
                "", tool_calls=[{"name": "lookup", "args": {"key": f"k{done}"}, "id": f"c{done}"}]
            )
        references = re.findall(r"^\d+\. ", messages[0].text, flags=re.MULTILINE)
        return f"final after {done} lookups; references: {len(references)}"

    return ScriptedChatModel(respond=respond, model_name="agg")


def _last_human(messages: list[BaseMessage]) -> int:
    return max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))


def _run(
    fanout: Any, turns: list[str], tool_calls: int = 2
) -> tuple[list[ScriptedChatModel], list[AIMessage]]:
    proposers = [ScriptedChatModel(answer=f"idea {i} words", model_name=f"p{i}") for i in range(3)]
    moa = MoAChatModel(proposers=proposers, aggregator=_aggregator(tool_calls), fanout=fanout)
    agent = create_agent(moa, [lookup])
    messages: list[BaseMessage] = []
    for text in turns:
        messages = agent.invoke({"messages": [*messages, HumanMessage(text)]})["messages"]
    return proposers, [m for m in messages if isinstance(m, AIMessage)]


def test_turn_fanout_runs_the_proposers_once_per_user_turn() -> None:
    proposers, answers = _run("turn", ["first question", "second question"])
    assert [len(p.calls) for p in proposers] == [2, 2, 2]  # two turns, three MoA calls each
    assert len(answers) == 6
    first, reuse, last = answers[:3]
    assert (
        first.response_metadata["moa"]["layers"] and "reused_proposals" not in first.response_metadata["moa"]
    )
    final_layer = first.response_metadata["moa"]["layers"][-1]
    for later in (reuse, last):
        moa = later.response_metadata["moa"]
        assert moa["layers"] == [] and moa["reused_proposals"] == final_layer
        # Reused proposals are not counted again: the usage is the aggregator's alone.
        assert later.usage_metadata == moa["aggregator"]["usage"]
    assert last.text == "final after 2 lookups; references: 3"  # the aggregator still saw the proposals
    assert answers[3].response_metadata["moa"]["layers"]  # a new user turn runs the proposers again


def test_call_fanout_runs_them_every_call_and_n_every_n_calls() -> None:
    every, _ = _run("call", ["q"], tool_calls=3)
    assert [len(p.calls) for p in every] == [4, 4, 4]
    every_two, answers = _run(2, ["q"], tool_calls=3)
    assert [len(p.calls) for p in every_two] == [2, 2, 2]  # calls 1 and 3 of 4
    assert ["reused_proposals" in a.response_metadata["moa"] for a in answers] == [False, True, False, True]


def test_reused_proposals_reach_the_aggregator_in_proposer_order() -> None:
    aggregator = _aggregator(2)
    proposers = [ScriptedChatModel(answer=f"idea {i} words", model_name=f"p{i}") for i in range(3)]
    agent = create_agent(MoAChatModel(proposers=proposers, aggregator=aggregator, fanout="turn"), [lookup])
    agent.invoke({"messages": [HumanMessage("q")]})
    blocks = [call["messages"][0].text for call in aggregator.calls]
    assert len(blocks) == 3 and len({*blocks}) == 1  # the same references on every call of the turn
    assert blocks[0].endswith("Responses from models:\n1. idea 0 words\n2. idea 1 words\n3. idea 2 words")
    assert isinstance(aggregator.calls[2]["messages"][-1], ToolMessage)  # and the tool traffic since


@pytest.mark.parametrize("value", ["sometimes", 0, -1, True])
def test_a_bad_fanout_names_the_choices(value: Any) -> None:
    with pytest.raises(MoAConfigError, match="fanout must be 'call', 'turn' or an integer >= 1"):
        MoAChatModel(proposers=[ScriptedChatModel()], aggregator=ScriptedChatModel(), fanout=value)
