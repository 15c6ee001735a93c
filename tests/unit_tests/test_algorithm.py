"""The algorithm exactly as the paper's code does it: prompts, reference order, layers, turns."""

from __future__ import annotations

import copy
import hashlib

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from langchain_moa import AGGREGATOR_PROMPT, MoAChatModel
from langchain_moa.conversation import proposer_view
from langchain_moa.fakes import ScriptedChatModel
from langchain_moa.prompts import inject_references, references_block

# sha256 of shared/reference/moa-aggregator-prompt.txt (the paper's prompt, no trailing newline).
PAPER_PROMPT_SHA256 = "051f3701ff1fbfdf3e0474a2bfe16dc9621c1c6665b1d0adefd43cd246dcc378"


def test_aggregator_prompt_is_the_papers_byte_for_byte() -> None:
    assert hashlib.sha256(AGGREGATOR_PROMPT.encode()).hexdigest() == PAPER_PROMPT_SHA256
    assert AGGREGATOR_PROMPT.endswith("Responses from models:")


def test_references_are_numbered_from_one() -> None:
    assert references_block("P:", ["a", "b", "c"]) == "P:\n1. a\n2. b\n3. c"


def test_inject_creates_a_leading_system_message() -> None:
    messages = [HumanMessage("hi")]
    injected = inject_references(messages, "P:", ["x"])
    assert injected[0] == SystemMessage("P:\n1. x")
    assert injected[1:] == messages


def test_inject_appends_to_an_existing_system_message_without_mutating_it() -> None:
    system = SystemMessage("Be brief.")
    messages = [system, HumanMessage("hi")]
    injected = inject_references(messages, "P:", ["x", "y"])
    assert injected[0].content == "Be brief.\n\nP:\n1. x\n2. y"
    assert system.content == "Be brief."
    assert len(injected) == 2


def test_inject_appends_a_text_block_to_list_content() -> None:
    system = SystemMessage(content=[{"type": "text", "text": "Be brief."}])
    injected = inject_references([system], "P:", ["x"])
    assert injected[0].content == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "\n\nP:\n1. x"},
    ]


def test_inject_without_references_changes_nothing() -> None:
    messages = [HumanMessage("hi")]
    assert inject_references(messages, "P:", []) == messages


def _said(messages: list) -> list[tuple[str, str]]:
    """(type, text) of each message: what a model was told, ignoring ids the graph assigns."""
    return [(m.type, m.text) for m in messages]


def _proposers(*answers: str, sleeps: tuple[float, ...] = ()) -> list[ScriptedChatModel]:
    return [
        ScriptedChatModel(answer=a, model_name=f"proposer-{i}", sleep=sleeps[i] if sleeps else 0.0)
        for i, a in enumerate(answers)
    ]


def test_two_layers_exact_prompts_in_proposer_order() -> None:
    # The first proposer finishes last: references still follow the proposer list.
    proposers = _proposers("A1", "B1", "C1", sleeps=(0.2, 0.0, 0.1))
    aggregator = ScriptedChatModel(answer="final")
    moa = MoAChatModel(proposers=proposers, aggregator=aggregator, layers=2)

    assert moa.invoke("What is 2+2?").content == "final"

    for proposer in proposers:
        assert len(proposer.calls) == 1
        assert _said(proposer.calls[0]["messages"]) == [("human", "What is 2+2?")]
    (call,) = aggregator.calls
    assert call["messages"][0] == SystemMessage(AGGREGATOR_PROMPT + "\n1. A1\n2. B1\n3. C1")
    assert call["messages"][1].content == "What is 2+2?"
    assert len(call["messages"]) == 2


def test_three_layers_later_proposers_see_the_previous_layer() -> None:
    calls: list[list] = []

    def layered(name: str):
        def respond(messages, _kwargs):
            calls.append(messages)
            layer = 2 if isinstance(messages[0], SystemMessage) else 1
            return f"{name}{layer}"

        return respond

    proposers = [ScriptedChatModel(respond=layered(n), model_name=n) for n in ("A", "B")]
    aggregator = ScriptedChatModel(answer="final")
    MoAChatModel(proposers=proposers, aggregator=aggregator, layers=3).invoke("Q")

    for proposer in proposers:
        first, second = proposer.calls
        assert _said(first["messages"]) == [("human", "Q")]
        assert second["messages"][0] == SystemMessage(AGGREGATOR_PROMPT + "\n1. A1\n2. B1")
        assert second["messages"][1].content == "Q"
    assert aggregator.calls[0]["messages"][0] == SystemMessage(AGGREGATOR_PROMPT + "\n1. A2\n2. B2")


def test_one_layer_is_the_aggregator_alone() -> None:
    proposer = ScriptedChatModel(answer="unused")
    aggregator = ScriptedChatModel(answer="solo")
    moa = MoAChatModel(proposers=[proposer], aggregator=aggregator, layers=1)
    result = moa.invoke("Q")
    assert result.content == "solo"
    assert proposer.calls == []
    assert _said(aggregator.calls[0]["messages"]) == [("human", "Q")]
    assert result.response_metadata["moa"]["layers"] == []


def test_system_message_gets_the_references_and_the_callers_messages_are_untouched() -> None:
    messages = [SystemMessage("You are terse."), HumanMessage("Q")]
    before = copy.deepcopy(messages)
    aggregator = ScriptedChatModel(answer="final")
    MoAChatModel(proposers=_proposers("A", "B"), aggregator=aggregator).invoke(messages)
    assert messages == before
    sent = aggregator.calls[0]["messages"]
    assert sent[0].content == "You are terse.\n\n" + AGGREGATOR_PROMPT + "\n1. A\n2. B"
    assert len(sent) == 2


def test_multi_turn_everyone_sees_the_whole_conversation_and_this_turns_references() -> None:
    proposers = [
        ScriptedChatModel(answers=["turn1-A", "turn2-A"], model_name="A"),
        ScriptedChatModel(answers=["turn1-B", "turn2-B"], model_name="B"),
    ]
    aggregator = ScriptedChatModel(answers=["reply 1", "reply 2"])
    moa = MoAChatModel(proposers=proposers, aggregator=aggregator)
    history = [HumanMessage("first question")]
    history.append(moa.invoke(history))
    history.append(HumanMessage("second question"))
    moa.invoke(history)

    second_prompt = [m.content for m in proposers[0].calls[1]["messages"]]
    assert second_prompt == ["first question", "reply 1", "second question"]
    sent = aggregator.calls[1]["messages"]
    assert sent[0].content == AGGREGATOR_PROMPT + "\n1. turn2-A\n2. turn2-B"
    assert [m.content for m in sent[1:]] == ["first question", "reply 1", "second question"]


def test_proposers_see_tool_calls_and_results_as_text() -> None:
    history = [
        HumanMessage("Weather in Paris?"),
        AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}]),
        ToolMessage("18C and sunny", tool_call_id="c1"),
    ]
    view = proposer_view(history)
    assert [type(m) for m in view] == [HumanMessage, AIMessage, HumanMessage]
    assert view[1].content == 'Called get_weather({"city": "Paris"})'
    assert not view[1].tool_calls
    assert view[2].content == "Result of get_weather: 18C and sunny"


@pytest.mark.parametrize("layers", [2, 3])
def test_every_call_gets_temperature_and_max_tokens(layers: int) -> None:
    proposers = _proposers("A", "B")
    aggregator = ScriptedChatModel(answer="final")
    MoAChatModel(
        proposers=proposers, aggregator=aggregator, layers=layers, temperature=0.3, max_tokens=64
    ).invoke("Q")
    calls = [c for m in [*proposers, aggregator] for c in m.calls]
    assert len(calls) == 2 * (layers - 1) + 1
    for call in calls:
        assert call["kwargs"]["temperature"] == 0.3
        assert call["kwargs"]["max_tokens"] == 64


def test_call_time_temperature_overrides_the_field() -> None:
    proposers = _proposers("A")
    aggregator = ScriptedChatModel(answer="final")
    moa = MoAChatModel(proposers=proposers, aggregator=aggregator, temperature=0.7)
    moa.invoke("Q", temperature=0.0)
    assert proposers[0].calls[0]["kwargs"]["temperature"] == 0.0
    assert aggregator.calls[0]["kwargs"]["temperature"] == 0.0


def test_stop_goes_to_the_aggregator_only() -> None:
    proposers = _proposers("A")
    aggregator = ScriptedChatModel(answer="final")
    MoAChatModel(proposers=proposers, aggregator=aggregator).invoke("Q", stop=["\n"])
    assert aggregator.calls[0]["kwargs"]["stop"] == ["\n"]
    assert "stop" not in proposers[0].calls[0]["kwargs"]
