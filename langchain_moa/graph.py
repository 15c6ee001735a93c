"""The Mixture-of-Agents graph: layers of parallel proposers, then the aggregator.

``build_moa_graph`` reads like the paper's figure: every proposer of a layer feeds every proposer of
the next layer, and the last layer feeds the aggregator::

    START ─┬─ layer 1 #1 ─┬─┬─ layer 2 #1 ─┬── aggregator ── END
           └─ layer 1 #2 ─┘ └─ layer 2 #2 ─┘

Every proposer is its own node, so LangGraph Studio draws who is in each layer. A layer ends when
all its proposers have (one superstep per layer); the next layer's nodes check that it kept
``min_proposals`` answers. The graph's input is LangGraph's ``MessagesState``; its answer is appended
to ``messages`` as an ``AIMessage`` with the summed usage and every proposal in
``response_metadata["moa"]``. Progress, tokens and the answer are sent as typed run events
(``langchain_moa.events``) on the custom stream (``stream_mode="custom"``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer
from pydantic import SecretStr

from langchain_moa.aggregation import strategy_of
from langchain_moa.aggregator import AggregatorNode
from langchain_moa.agreement import Judge
from langchain_moa.costs import Pricer
from langchain_moa.fanout import Fanout, reusable_proposals
from langchain_moa.models import resolve_chat_model, slow_to_make
from langchain_moa.nodes import AGGREGATOR_NODE, NodeSettings, proposer_node_name
from langchain_moa.options import MoAOptions
from langchain_moa.proposer import ProposerNode
from langchain_moa.staircase import Staircases
from langchain_moa.state import MoAContext, MoAState
from langchain_moa.tail_latency import TailLatency

__all__ = ["AGGREGATOR_NODE", "MoAGraph", "build_moa_graph", "resolve_models", "run_config"]

MoAGraph = CompiledStateGraph[MoAState, MoAContext, MessagesState, MoAState]
"""A compiled MoA graph."""


def _first_layer_or_reuse(first_layer: list[str], fanout: Fanout) -> Callable[[MoAState], list[str]]:
    def route(state: MoAState) -> list[str]:
        reused = reusable_proposals(state["messages"], fanout)
        return [AGGREGATOR_NODE] if reused is not None else first_layer

    return route


def run_config(layers: int, **config: Any) -> dict[str, Any]:
    """Run configuration for a graph of ``layers`` layers (one superstep each)."""
    return {"recursion_limit": layers + 10, **config}


def resolve_models(
    options: MoAOptions, *, api_key: SecretStr | None = None
) -> tuple[list[BaseChatModel], BaseChatModel]:
    """The chat models the options name: the proposers (none when ``layers=1``) and the aggregator.

    Models that load weights are made last: a missing key of another model fails before one loads
    (seconds)."""
    wanted = [*(options.proposers if options.layers > 1 else []), options.aggregator]
    made: dict[int, BaseChatModel] = {}
    for i in sorted(range(len(wanted)), key=lambda i: slow_to_make(wanted[i])):
        made[i] = resolve_chat_model(wanted[i], api_key=api_key)
    models = [made[i] for i in range(len(wanted))]
    return models[:-1], models[-1]


def build_moa_graph(
    proposers: Sequence[BaseChatModel | str] | None = None,
    aggregator: BaseChatModel | str | None = None,
    *,
    options: MoAOptions | None = None,
    api_key: SecretStr | None = None,
    checkpointer: Checkpointer | Literal[False] = None,
    name: str = "moa",
    context_schema: type[Any] = MoAContext,
    **fields: Any,
) -> MoAGraph:
    """Build the Mixture-of-Agents graph.

    Args:
        proposers: chat models or ``"provider:model"`` strings; each proposer layer runs them all.
        aggregator: the model that synthesises the last layer's answers.
        options: a whole ``MoAOptions`` instead of ``proposers``, ``aggregator`` and ``fields``.
        api_key: Together key for bare model names (default: ``TOGETHER_API_KEY``).
        checkpointer: passed to ``compile``; ``False`` when the graph runs inside another graph's node.
        name: the compiled graph's name.
        context_schema: the run context's type (LangGraph Server's assistant form is drawn from it).
        **fields: any other ``MoAOptions`` field (``layers``, ``temperature``, ``proposal_quorum``, ...),
            validated the same way.

    Raises:
        MoAConfigError: an invalid option, unknown provider or missing key, before any model is made.

    Examples:
        >>> from langchain_moa.fakes import ScriptedChatModel
        >>> graph = build_moa_graph([ScriptedChatModel(answer="4")] * 2, ScriptedChatModel(answer="Four."))
        >>> graph.invoke({"messages": [("user", "2+2?")]})["messages"][-1].content
        'Four.'
    """
    if options is None:
        options = MoAOptions(proposers=list(proposers or []), aggregator=aggregator, **fields)
    proposer_models, aggregator_model = resolve_models(options, api_key=api_key)
    judge = Judge(embeddings=options.agreement_embeddings, threshold=options.agreement_threshold)
    settings = NodeSettings(options, TailLatency(options), judge=judge, pricer=Pricer(options.prices))

    graph = StateGraph(MoAState, context_schema=context_schema, input_schema=MessagesState)
    previous: list[str] = []  # the nodes whose answers the next layer reads
    waits_on: list[str] = []  # the nodes the next layer starts after (with ``cascade``, the later ones)
    entry: list[str] = []  # the first nodes to run
    layer_nodes: list[list[str]] = []
    # With ``staircase`` the aggregator runs beside the last layer, reading its proposals as they stream.
    staircases = None
    if options.staircase is not None and options.layers > 1:
        staircases = Staircases(len(proposer_models), options.staircase)
    staircase = staircases is not None
    for layer in range(1, options.layers):
        names = [proposer_node_name(layer, i, m) for i, m in enumerate(proposer_models, start=1)]
        streams = staircase and layer == options.layers - 1
        # With ``cascade``, the first proposers run, then the others (each skipped if those agreed).
        first = names[: options.cascade] if options.cascade is not None else names
        for index, (node, model) in enumerate(zip(names, proposer_models, strict=True), start=1):
            later = node not in first
            proposer = ProposerNode(
                node,
                model,
                layer=layer,
                index=index,
                layer_size=len(names),
                references_from=previous,
                settings=settings,
                staircases=staircases if streams else None,
                earlier_layers=layer_nodes,
                cascade_first=first if later else (),
            )
            graph.add_node(node, proposer.runnable())
            settings.models[node] = model
            if later:
                graph.add_edge(first, node)
            elif waits_on or options.fanout == "call":
                graph.add_edge(waits_on or START, node)
            if streams:
                graph.add_edge(node, END)
        if not streams:
            previous, waits_on = names, [n for n in names if n not in first] or first
        entry = entry or first
        layer_nodes.append(names)
    if options.fanout != "call" and layer_nodes:
        # Proposal reuse: a call that reuses its turn's proposals goes straight to the aggregator.
        first_layer = entry + ([AGGREGATOR_NODE] if staircase and len(layer_nodes) == 1 else [])
        route = _first_layer_or_reuse(first_layer, options.fanout)
        graph.add_conditional_edges(START, route, list(dict.fromkeys([*first_layer, AGGREGATOR_NODE])))

    aggregate = AggregatorNode(
        aggregator_model, layer_nodes=layer_nodes, settings=settings, staircases=staircases
    )
    # Studio shows the node's metadata: which aggregation strategy it runs.
    metadata: dict[str, Any] = {"aggregation": strategy_of(options.aggregation).name}
    if staircase:
        metadata["staircase"] = f"streams in chunks of {options.staircase} tokens from the last layer"
    graph.add_node(AGGREGATOR_NODE, aggregate.runnable(), metadata=metadata)
    if previous or options.fanout == "call" or not staircase:
        graph.add_edge(waits_on or START, AGGREGATOR_NODE)
    graph.add_edge(AGGREGATOR_NODE, END)
    return graph.compile(checkpointer=checkpointer, name=name)
