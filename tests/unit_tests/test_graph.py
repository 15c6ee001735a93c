"""The LangGraph graph behind MoA: its shape, its state, its stream events."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.checkpoint.memory import InMemorySaver

from langchain_moa import InvalidConversationError, MoAChatModel, build_moa_graph
from langchain_moa.events import AggregatorStarted, Answer, ProposalReady, Token
from langchain_moa.fakes import ScriptedChatModel
from langchain_moa.graph import AGGREGATOR_NODE


def _models(n: int) -> list[ScriptedChatModel]:
    return [ScriptedChatModel(answer=f"idea {i}", model_name=f"org/model-{i}") for i in range(n)]


def test_every_proposer_of_every_layer_is_a_node() -> None:
    graph = build_moa_graph(_models(3), ScriptedChatModel(), layers=3)
    layer1 = ["layer 1 #1 model-0", "layer 1 #2 model-1", "layer 1 #3 model-2"]
    layer2 = ["layer 2 #1 model-0", "layer 2 #2 model-1", "layer 2 #3 model-2"]
    assert list(graph.nodes) == ["__start__", *layer1, *layer2, AGGREGATOR_NODE]
    edges = {(e.source, e.target) for e in graph.get_graph().edges}
    # As in the paper's figure: every proposer of a layer feeds every proposer of the next.
    assert edges == {
        *(("__start__", n) for n in layer1),
        *((a, b) for a in layer1 for b in layer2),
        *((n, AGGREGATOR_NODE) for n in layer2),
        (AGGREGATOR_NODE, "__end__"),
    }


def test_mermaid_drawing_of_two_proposers_and_two_layers() -> None:
    drawing = build_moa_graph(_models(2), ScriptedChatModel(), layers=2).get_graph().draw_mermaid()
    assert drawing.splitlines()[6:15] == [
        "\t__start__([<p>__start__</p>]):::first",
        "\tlayer\\201\\20\\231\\20model-0(layer 1 #1 model-0)",
        "\tlayer\\201\\20\\232\\20model-1(layer 1 #2 model-1)",
        "\taggregator(aggregator<hr/><small><em>aggregation = synthesize</em></small>)",
        "\t__end__([<p>__end__</p>]):::last",
        "\t__start__ --> layer\\201\\20\\231\\20model-0;",
        "\t__start__ --> layer\\201\\20\\232\\20model-1;",
        "\tlayer\\201\\20\\231\\20model-0 --> aggregator;",
        "\tlayer\\201\\20\\232\\20model-1 --> aggregator;",
    ]


def test_the_model_exposes_its_graph() -> None:
    moa = MoAChatModel(proposers=_models(2), aggregator=ScriptedChatModel())
    assert "layer 1 #2 model-1" in moa.graph.nodes


def test_the_graph_takes_messages_state_and_keeps_a_thread_with_a_checkpointer() -> None:
    aggregator = ScriptedChatModel(answers=["first reply", "second reply"])
    graph = build_moa_graph(_models(2), aggregator, checkpointer=InMemorySaver())
    thread = {"configurable": {"thread_id": "t1"}}
    graph.invoke({"messages": [HumanMessage("hello")]}, thread)
    state = graph.invoke({"messages": [HumanMessage("and again")]}, thread)
    assert [m.text for m in state["messages"]] == ["hello", "first reply", "and again", "second reply"]
    # The second turn saw the first, and this turn's references only.
    sent = aggregator.calls[1]["messages"]
    assert [m.text for m in sent[1:]] == ["hello", "first reply", "and again"]
    assert sent[0].text.endswith("\n1. idea 0\n2. idea 1")
    assert state["messages"][-1].response_metadata["moa"]["layers"][0][0]["content"] == "idea 0"


def test_the_custom_stream_carries_the_typed_run_events_in_order() -> None:
    graph = build_moa_graph(_models(2), ScriptedChatModel(answer="two words"), layers=3)
    events = list(graph.stream({"messages": [HumanMessage("Q")]}, stream_mode="custom"))
    kinds = [e.kind for e in events]
    assert kinds[:4].count("proposer_started") == 2 and kinds[:4].count("proposal") == 2
    assert kinds[4:8].count("proposer_started") == 2 and kinds[4:8].count("proposal") == 2
    assert kinds[8:] == ["aggregator_started", "token", "token", "token", "answer"]
    assert {e.proposal["layer"] for e in events[:4] if isinstance(e, ProposalReady)} == {1}
    assert events[8] == AggregatorStarted(model="scripted", references=2)
    assert "".join(e.chunk.text for e in events if isinstance(e, Token)) == "two words"
    (answer,) = [e for e in events if isinstance(e, Answer)]
    assert answer.message.text == "two words"
    assert answer.message.usage_metadata is not None
    assert [len(layer) for layer in answer.message.response_metadata["moa"]["layers"]] == [2, 2]


async def test_events_are_the_same_from_a_sync_and_an_async_run() -> None:
    def kinds(events: list) -> list[str]:
        return [e.kind for e in events]

    graph = build_moa_graph(_models(3), ScriptedChatModel(answer="a b"), layers=2)
    state = {"messages": [HumanMessage("Q")]}
    sync = list(graph.stream(state, stream_mode="custom"))
    asynchronous = [e async for e in graph.astream(state, stream_mode="custom")]
    assert sorted(kinds(sync)) == sorted(kinds(asynchronous))
    assert kinds(sync)[-5:] == kinds(asynchronous)[-5:] == ["aggregator_started", *["token"] * 3, "answer"]


def test_a_messages_stream_shows_each_aggregator_token_once() -> None:
    # What a LangGraph Server client following the README sees with stream_mode="messages".
    graph = build_moa_graph(_models(2), ScriptedChatModel(answer="one two three"))
    texts = [
        message.text
        for message, metadata in graph.stream({"messages": [HumanMessage("Q")]}, stream_mode="messages")
        if metadata["langgraph_node"] == AGGREGATOR_NODE
    ]
    assert "".join(texts) == "one two three"


def test_an_empty_or_blank_conversation_fails_in_the_graph_before_any_model_is_called() -> None:
    proposers, aggregator = _models(2), ScriptedChatModel()
    graph = build_moa_graph(proposers, aggregator)
    for messages in ([], [HumanMessage("   ")], [SystemMessage("You are helpful."), HumanMessage(" ")]):
        with pytest.raises(InvalidConversationError, match="the conversation"):
            graph.invoke({"messages": messages})
    assert all(m.calls == [] for m in [*proposers, aggregator])


def test_inside_another_graph_moa_writes_no_checkpoints_of_its_own() -> None:
    from langchain.agents import create_agent

    moa = MoAChatModel(proposers=_models(2), aggregator=ScriptedChatModel(answer="done"))
    saver = InMemorySaver()
    agent = create_agent(moa, [], checkpointer=saver)
    agent.invoke({"messages": [HumanMessage("Q")]}, {"configurable": {"thread_id": "t"}})
    namespaces = {c.config["configurable"].get("checkpoint_ns", "") for c in saver.list(None)}
    assert namespaces == {""}


def test_model_names_with_colons_make_valid_node_names() -> None:
    moa = MoAChatModel(
        proposers=[ScriptedChatModel(model_name="llama3.1:8b")], aggregator=ScriptedChatModel(answer="ok")
    )
    assert "layer 1 #1 llama3.1-8b" in moa.graph.nodes
    result = moa.invoke("Q")
    assert result.response_metadata["moa"]["layers"][0][0]["model"] == "llama3.1:8b"
