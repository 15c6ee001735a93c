"""The LangGraph graph behind MoA: its shape, its state, its stream events."""

from __future__ import annotations

from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from langchain_moa import MoAChatModel, build_moa_graph
from langchain_moa.fakes import ScriptedChatModel
from langchain_moa.graph import AGGREGATOR_NODE


def _models(n: int) -> list[ScriptedChatModel]:
    return [ScriptedChatModel(answer=f"idea {i}", model_name=f"org/model-{i}") for i in range(n)]


def test_every_proposer_of_every_layer_is_a_node() -> None:
    graph = build_moa_graph(_models(3), ScriptedChatModel(), layers=3)
    assert list(graph.nodes) == [
        "__start__",
        "layer 1 #1 model-0", "layer 1 #2 model-1", "layer 1 #3 model-2", "layer 1 done",
        "layer 2 #1 model-0", "layer 2 #2 model-1", "layer 2 #3 model-2", "layer 2 done",
        AGGREGATOR_NODE,
    ]  # fmt: skip
    edges = {(e.source, e.target) for e in graph.get_graph().edges}
    assert ("layer 1 done", "layer 2 #3 model-2") in edges
    assert ("layer 2 #1 model-0", "layer 2 done") in edges
    assert ("layer 2 done", AGGREGATOR_NODE) in edges
    assert (AGGREGATOR_NODE, "__end__") in edges


def test_mermaid_drawing_of_two_proposers_and_two_layers() -> None:
    drawing = build_moa_graph(_models(2), ScriptedChatModel(), layers=2).get_graph().draw_mermaid()
    assert drawing.splitlines()[6:17] == [
        "\t__start__([<p>__start__</p>]):::first",
        "\tlayer\\201\\20\\231\\20model-0(layer 1 #1 model-0)",
        "\tlayer\\201\\20\\232\\20model-1(layer 1 #2 model-1)",
        "\tlayer\\201\\20done(layer 1 done)",
        "\taggregator(aggregator)",
        "\t__end__([<p>__end__</p>]):::last",
        "\t__start__ --> layer\\201\\20\\231\\20model-0;",
        "\t__start__ --> layer\\201\\20\\232\\20model-1;",
        "\tlayer\\201\\20\\231\\20model-0 --> layer\\201\\20done;",
        "\tlayer\\201\\20\\232\\20model-1 --> layer\\201\\20done;",
        "\tlayer\\201\\20done --> aggregator;",
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


def test_custom_stream_reports_proposer_progress_and_aggregator_tokens() -> None:
    graph = build_moa_graph(_models(2), ScriptedChatModel(answer="two words"))
    events = [e for e in graph.stream({"messages": [HumanMessage("Q")]}, stream_mode="custom")]
    kinds = [e["event"] for e in events]
    assert kinds.count("proposer_start") == 2
    assert kinds.count("proposal") == 2
    assert kinds.index("aggregator_start") > max(i for i, k in enumerate(kinds) if k == "proposal")
    tokens = "".join(e["chunk"].text for e in events if e["event"] == "token")
    assert tokens == "two words"


def test_inside_another_graph_moa_writes_no_checkpoints_of_its_own() -> None:
    from langchain.agents import create_agent

    moa = MoAChatModel(proposers=_models(2), aggregator=ScriptedChatModel(answer="done"))
    saver = InMemorySaver()
    agent = create_agent(moa, [], checkpointer=saver)
    agent.invoke({"messages": [HumanMessage("Q")]}, {"configurable": {"thread_id": "t"}})
    namespaces = {c.config["configurable"].get("checkpoint_ns", "") for c in saver.list(None)}
    assert namespaces == {""}
