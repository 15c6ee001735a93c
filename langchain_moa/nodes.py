"""What the nodes of a MoA graph share: their settings, the node wrapper, and how a node reads the
layers before it. The nodes themselves: ``proposer.ProposerNode`` and ``aggregator.AggregatorNode``.

A proposer node never raises: a failure, timeout or cut is recorded in its ``Proposal`` and the
proposal is dropped from the references (a raising node would cancel its siblings). The nodes of the
next layer (or the aggregator) first check that the layer kept ``min_proposals`` answers, and raise
``MoAError`` naming every failure when it did not. Sync graph runs drive the same code on the
background loop of ``sync_bridge``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig

# LangGraph's own node wrapper (langgraph-prebuilt's ToolNode uses it too): it takes a sync and an async
# function and inspects their signatures once, where RunnableLambda does it on every call and adds a
# traced run per node. Private: tests/unit_tests/test_upstream.py pins it (.ci/newest: new releases).
from langgraph._internal._runnable import RunnableCallable
from langgraph.runtime import get_runtime

from langchain_moa import sync_bridge
from langchain_moa.agreement import Consensus, Judge
from langchain_moa.cancellation import until_cancelled
from langchain_moa.conversation import check_conversation
from langchain_moa.costs import Pricer
from langchain_moa.errors import too_few_proposals
from langchain_moa.models import model_label
from langchain_moa.options import MoAOptions
from langchain_moa.records import AGGREGATOR_NODE
from langchain_moa.state import MoAContext, MoAState, Proposal
from langchain_moa.tail_latency import TailLatency

__all__ = ["AGGREGATOR_NODE", "ChatRunnable", "NodeSettings", "node", "proposer_node_name"]

ChatRunnable = Runnable[LanguageModelInput, BaseMessage]


def proposer_node_name(layer: int, index: int, model: BaseChatModel) -> str:
    """Readable, unique node name, e.g. ``"layer 1 #2 Qwen2.5-72B-Instruct-Turbo"``.

    LangGraph reserves ``:`` and ``|`` in node names (``llama3.1:8b`` becomes ``llama3.1-8b``).
    """
    label = model_label(model).rsplit("/", 1)[-1].replace(":", "-").replace("|", "-")
    return f"layer {layer} #{index} {label}"


@dataclass(frozen=True)
class NodeSettings:
    """What every node of one graph shares: the options, the tail-latency policy, the agreement
    judge, the prices, and each proposer node's model."""

    options: MoAOptions
    policy: TailLatency
    judge: Judge = field(default_factory=Judge)
    pricer: Pricer = field(default_factory=Pricer)
    models: dict[str, BaseChatModel] = field(default_factory=dict)
    """Each proposer node's model, for its cost."""

    async def agreed(self, state: MoAState, nodes: Sequence[str], share: float) -> Consensus | None:
        """Whether the proposals of ``nodes`` (one layer) that ran agree by ``share``; ``None`` also
        when the embedding model fails (the aggregator records that)."""
        ran = [p for n in nodes if "skipped" not in (p := state["proposals"][n])]
        try:
            return await self.judge.consensus(ran, share) if ran else None
        except Exception:
            return None

    def call_kwargs(self, context: MoAContext, *, proposer: bool = False) -> dict[str, Any]:
        """Sampling arguments of this run: the run context overrides the graph's defaults; a proposer's
        token limit is ``proposer_max_tokens`` when one is set."""
        kwargs: dict[str, Any] = {}
        temperature = context.temperature if context.temperature is not None else self.options.temperature
        max_tokens = context.max_tokens if context.max_tokens is not None else self.options.max_tokens
        if proposer and self.options.proposer_max_tokens is not None:
            max_tokens = self.options.proposer_max_tokens
        if temperature is not None:
            kwargs["temperature"] = temperature
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        return kwargs


def node(
    name: str, afunc: Callable[[MoAState, RunnableConfig], Coroutine[Any, Any, dict[str, Any]]]
) -> RunnableCallable:
    """A graph node running ``afunc``; a sync graph run drives it on the background loop."""

    async def guarded(state: MoAState, config: RunnableConfig) -> dict[str, Any]:
        # A cancelled run must stop this node's model calls even where a provider's client loses a
        # cancel (``cancellation``): the node's work runs in a task that is cancelled until it stops.
        return await until_cancelled(afunc(state, config))

    def func(state: MoAState, config: RunnableConfig) -> dict[str, Any]:
        return sync_bridge.run(guarded(state, config))

    return RunnableCallable(func, guarded, name=name, trace=False)  # the node run is traced already


def run_context() -> MoAContext:
    context = get_runtime().context
    return context if isinstance(context, MoAContext) else MoAContext()


def superstep_id() -> str:
    """The id shared by the nodes of one superstep of one run: a layer's proposers (and, with
    ``staircase``, the aggregator beside the last layer) meet by it."""
    superstep = get_runtime().execution_info
    if superstep is None or superstep.checkpoint_id is None:
        msg = "LangGraph gave no checkpoint id to a MoA node (needed to share its layer's race)"
        raise RuntimeError(msg)
    return superstep.checkpoint_id


def error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def kept(state: MoAState, layer: int, nodes: Sequence[str], min_proposals: int) -> list[Proposal]:
    """The proposals of ``nodes`` (one layer) that answered, in proposer order; ``MoAError`` when too
    few did (a proposer skipped because others agreed is not counted as failed)."""
    if not nodes:  # the first layer reads the conversation itself
        check_conversation(state["messages"])
        return []
    proposals = [state["proposals"][n] for n in nodes]
    answers = [p for p in proposals if p["content"] is not None]
    if len(answers) < min_proposals:
        failures = "; ".join(
            f"proposer {p['index']} ({p['model']}): {p['error']}" for p in proposals if p["error"]
        )
        msg = (
            f"layer {layer} kept {len(answers)} of {len(proposals)} proposals, fewer than "
            f"min_proposals={min_proposals}. Failed: {failures}"
        )
        raise too_few_proposals(msg, [p["error"] for p in proposals if p["error"]])
    return answers


def ran(state: MoAState, layers: Sequence[Sequence[str]]) -> list[list[str]]:
    """The layers whose proposers ran (all but those skipped after an agreement)."""
    return [list(nodes) for nodes in layers if any("skipped" not in state["proposals"][n] for n in nodes)]
