"""The nodes of a MoA graph, each written once as async code: proposer, layer check, aggregator.

A proposer node never raises: a failure, timeout or cut is recorded in its ``Proposal`` and the
proposal is dropped from the references (a raising node would cancel its siblings). The nodes of the
next layer (or the aggregator) first check that the layer kept ``min_proposals`` answers, and raise
``MoAError`` naming every failure when it did not. Sync graph runs drive the same code on the
background loop of ``sync_bridge``.
"""

from __future__ import annotations

import contextlib
import functools
import random
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.exceptions import ContextOverflowError
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, message_chunk_to_message
from langchain_core.messages.ai import add_ai_message_chunks, add_usage
from langchain_core.runnables import Runnable, RunnableConfig

# LangGraph's own node wrapper (langgraph-prebuilt's ToolNode uses it too): it takes a sync and an async
# function and inspects their signatures once, where RunnableLambda does it on every call and adds a
# traced run per node. Private: tests/unit_tests/test_upstream.py pins it (.ci/newest: new releases).
from langgraph._internal._runnable import RunnableCallable
from langgraph.runtime import get_runtime

from langchain_moa import aggregation, sync_bridge
from langchain_moa.agreement import Consensus, Judge
from langchain_moa.cancellation import until_cancelled
from langchain_moa.conversation import as_chunk, check_conversation, proposer_view
from langchain_moa.costs import Pricer
from langchain_moa.errors import OVERFLOW, AggregatorError, MoAError, aggregator_error, too_few_proposals
from langchain_moa.events import (
    AggregatorStarted,
    Agreed,
    Answer,
    ProposalChunk,
    ProposalReady,
    ProposerStarted,
    Token,
    emit,
)
from langchain_moa.fanout import reusable_proposals
from langchain_moa.models import endpoint_of, model_label
from langchain_moa.options import MoAOptions
from langchain_moa.prompts import inject_references
from langchain_moa.staircase import Staircase, aggregate_in_rounds, prefills
from langchain_moa.state import MoAContext, MoAState, Proposal
from langchain_moa.tail_latency import Meetings, ProposalCut, TailLatency, within

__all__ = ["AGGREGATOR_NODE", "AggregatorNode", "NodeSettings", "ProposerNode", "proposer_node_name"]

ChatRunnable = Runnable[LanguageModelInput, BaseMessage]

AGGREGATOR_NODE = "aggregator"
"""Name of the aggregator node (the last node of every MoA graph)."""


def proposer_node_name(layer: int, index: int, model: BaseChatModel) -> str:
    """Readable, unique node name, e.g. ``"layer 1 #2 Qwen2.5-72B-Instruct-Turbo"``.

    LangGraph reserves ``:`` and ``|`` in node names (``llama3.1:8b`` becomes ``llama3.1-8b``).
    """
    label = model_label(model).rsplit("/", 1)[-1].replace(":", "-").replace("|", "-")
    return f"layer {layer} #{index} {label}"


@dataclass(frozen=True)
class NodeSettings:
    """What every node of one graph shares: the options, the tail-latency policy and, with
    ``staircase``, the streams of each run's last layer."""

    options: MoAOptions
    policy: TailLatency
    staircases: Meetings[Staircase] = field(default_factory=Meetings)
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


def _node(
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


def _run_context() -> MoAContext:
    context = get_runtime().context
    return context if isinstance(context, MoAContext) else MoAContext()


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _kept_references(state: MoAState, layer: int, nodes: Sequence[str], min_proposals: int) -> list[str]:
    """The answers of ``nodes`` (one layer) in proposer order; ``MoAError`` when too few survived."""
    return [p["content"] or "" for p in _kept(state, layer, nodes, min_proposals)]


def _kept(state: MoAState, layer: int, nodes: Sequence[str], min_proposals: int) -> list[Proposal]:
    """The proposals of ``nodes`` (one layer) that answered, in proposer order; ``MoAError`` when too
    few did (a proposer skipped because others agreed is not counted as failed)."""
    if not nodes:  # the first layer reads the conversation itself
        check_conversation(state["messages"])
        return []
    proposals = [state["proposals"][n] for n in nodes]
    kept = [p for p in proposals if p["content"] is not None]
    if len(kept) < min_proposals:
        failures = "; ".join(
            f"proposer {p['index']} ({p['model']}): {p['error']}" for p in proposals if p["error"]
        )
        msg = (
            f"layer {layer} kept {len(kept)} of {len(proposals)} proposals, fewer than "
            f"min_proposals={min_proposals}. Failed: {failures}"
        )
        raise too_few_proposals(msg, [p["error"] for p in proposals if p["error"]])
    return kept


def _ran(state: MoAState, layers: Sequence[Sequence[str]]) -> list[list[str]]:
    """The layers whose proposers ran (all but those skipped after an agreement)."""
    return [list(nodes) for nodes in layers if any("skipped" not in state["proposals"][n] for n in nodes)]


class ProposerNode:
    """One proposer in one layer: answers the conversation, seeing the previous layer's answers."""

    def __init__(
        self,
        node: str,
        model: BaseChatModel,
        *,
        layer: int,
        index: int,
        layer_size: int,
        references_from: Sequence[str],
        settings: NodeSettings,
        streams_to_aggregator: bool = False,
        earlier_layers: Sequence[Sequence[str]] = (),
        cascade_first: Sequence[str] = (),
    ) -> None:
        self.node = node
        self.label = model_label(model)
        self.endpoint = endpoint_of(model)
        self.model: ChatRunnable = model
        if retries := settings.options.max_retries:
            self.model = model.with_retry(stop_after_attempt=retries + 1, wait_exponential_jitter=True)
        self.layer = layer
        self.index = index
        self.layer_size = layer_size
        self.references_from = list(references_from)
        self.settings = settings
        self.streams_to_aggregator = streams_to_aggregator
        """With ``staircase``, the last layer streams its proposals to the aggregator as they are written."""
        self.earlier_layers = [list(nodes) for nodes in earlier_layers]
        """The nodes of each earlier layer: with ``early_exit``, one that agreed skips this one."""
        self.cascade_first = list(cascade_first)
        """With ``cascade``, the first proposers of this layer (this one runs after them): when they
        agree, this one is skipped."""

    def runnable(self) -> RunnableCallable:
        return _node(self.node, self.ainvoke)

    async def ainvoke(self, state: MoAState, config: RunnableConfig) -> dict[str, Any]:
        if not self.streams_to_aggregator:
            if (why := await self._why_skip(state)) is not None:
                return {"proposals": {self.node: self._proposal(None, None, 0.0) | {"skipped": why}}}
            return await self._propose(state, config, None)
        staircases, chunk = self.settings.staircases, self.settings.options.staircase
        assert chunk is not None
        size = self.layer_size + 1  # the layer's proposers and the aggregator
        with staircases.join(_superstep_id(), size, lambda: Staircase(self.layer_size, chunk)) as staircase:
            try:
                return await self._propose(state, config, staircase)
            finally:  # never leave the aggregator waiting, whatever stopped this proposer
                if staircase.streams[self.index - 1].proposal is None:
                    staircase.finished(self._proposal(None, MoAError("the proposer stopped"), 0.0))

    async def _why_skip(self, state: MoAState) -> str | None:
        """Why this proposer need not run: an earlier layer agreed (``early_exit``), or the first
        proposers of its layer did (``cascade``)."""
        settings, share = self.settings, self.settings.options.early_exit
        if share is not None:
            for nodes in self.earlier_layers:
                if (agreed := await settings.agreed(state, nodes, share)) is not None:
                    return f"layer {agreed.layer} agreed (early_exit)"
        if self.cascade_first and await settings.agreed(state, self.cascade_first, share or 1.0):
            return f"the first {len(self.cascade_first)} proposers of layer {self.layer} agreed (cascade)"
        return None

    async def _propose(
        self, state: MoAState, config: RunnableConfig, staircase: Staircase | None
    ) -> dict[str, Any]:
        settings = self.settings
        references = _kept_references(
            state, self.layer - 1, self.references_from, settings.options.min_proposals
        )
        messages = inject_references(
            proposer_view(state["messages"]), settings.options.aggregator_prompt, references
        )
        kwargs = settings.call_kwargs(_run_context(), proposer=True)
        started: float | None = None

        async def call() -> BaseMessage:
            nonlocal started
            emit(ProposerStarted(node=self.node, layer=self.layer, index=self.index, model=self.label))
            started = time.perf_counter()
            if staircase is None:
                return await self.model.ainvoke(messages, config, **kwargs)
            return await self._stream_to(staircase, messages, config, kwargs)

        policy = settings.policy
        with policy.race(_superstep_id() if policy.races else "", self.layer, self.layer_size) as race:
            try:
                answer, error = await policy.propose(race, call), None
            except Exception as caught:  # any failure drops this proposal; it is recorded
                answer, error = None, caught
            latency = 0.0 if started is None else time.perf_counter() - started
            proposal = self._proposal(answer, error, latency)
            if race is not None:
                race.record(answered=proposal["error"] is None)
        if staircase is not None:
            staircase.finished(proposal)
        emit(ProposalReady(proposal=proposal))
        return {"proposals": {self.node: proposal}}

    async def _stream_to(
        self,
        staircase: Staircase,
        messages: list[BaseMessage],
        config: RunnableConfig,
        kwargs: dict[str, Any],
    ) -> BaseMessage:
        """The proposal, each token handed to the aggregator as it arrives."""
        chunks: list[AIMessageChunk] = []
        # Closed on leaving, not when garbage is collected: a cut proposal stops its HTTP stream at once.
        async with contextlib.aclosing(self.model.astream(messages, config, **kwargs)) as stream:
            async for raw in stream:
                chunk = as_chunk(raw)
                chunks.append(chunk)
                if chunk.text:
                    staircase.wrote(self.index, chunk.text)
                    emit(ProposalChunk(node=self.node, index=self.index, text=chunk.text))
                if staircase.closed:
                    raise ProposalCut("cut: the aggregator had used all its max_tokens")
        if not chunks:
            return AIMessage(content="")
        return message_chunk_to_message(add_ai_message_chunks(*chunks) if len(chunks) > 1 else chunks[0])

    def _proposal(self, answer: BaseMessage | None, error: BaseException | None, latency: float) -> Proposal:
        proposal = Proposal(
            node=self.node,
            layer=self.layer,
            index=self.index,
            model=self.label,
            content=None,
            error=None,
            usage=None,
            latency_s=round(latency, 4),
            cut=isinstance(error, ProposalCut),
        )
        if answer is not None:
            proposal["usage"] = getattr(answer, "usage_metadata", None)  # tokens spent, even on nothing
            if answer.text.strip():
                proposal["content"] = answer.text
            else:
                proposal["error"] = "EmptyAnswer: the model returned no text"
        elif error is None:  # skipped: it never ran
            pass
        elif isinstance(error, ProposalCut):
            proposal["error"] = str(error)
        elif isinstance(error, ContextOverflowError):  # named alike whichever provider raised it
            proposal["error"] = f"{OVERFLOW}: {error}"
        else:
            proposal["error"] = _error_text(error)
            if self.endpoint:  # an unreachable endpoint is found at once
                proposal["error"] += f" (endpoint {self.endpoint})"
        return proposal


def _answered(proposal: Proposal) -> bool:
    """Whether a proposer's model answered (so that it spent tokens it should have reported)."""
    return proposal["content"] is not None or (proposal["error"] or "").startswith("EmptyAnswer")


def _superstep_id() -> str:
    # Proposers of one layer in one run share a superstep, hence its checkpoint id.
    superstep = get_runtime().execution_info
    if superstep is None or superstep.checkpoint_id is None:
        msg = "LangGraph gave no checkpoint id to a proposer node (needed to share its layer's race)"
        raise RuntimeError(msg)
    return superstep.checkpoint_id


class AggregatorNode:
    """Synthesises the last layer's answers into the reply, streaming its tokens."""

    def __init__(
        self,
        model: BaseChatModel,
        *,
        references_from: Sequence[str],
        layer_nodes: Sequence[Sequence[str]],
        settings: NodeSettings,
    ) -> None:
        self.model = model
        self.label = model_label(model)
        self.references_from = list(references_from)
        self.layer_nodes = [list(nodes) for nodes in layer_nodes]
        self.settings = settings
        self.rng = random.Random(settings.options.seed)  # ``shuffle``'s orders: one sequence per graph
        self.strategy = settings.options.strategy()

    def runnable(self) -> RunnableCallable:
        return _node(AGGREGATOR_NODE, self.ainvoke)

    async def ainvoke(self, state: MoAState, config: RunnableConfig) -> dict[str, Any]:
        settings = self.settings
        reused = reusable_proposals(state["messages"], settings.options.fanout)
        chunk = settings.options.staircase
        if chunk is None or not self.layer_nodes or reused is not None:
            return await self._aggregate(state, config, reused, None)
        size = len(self.layer_nodes[-1])  # this node runs beside the last layer (see ``graph``)
        with settings.staircases.join(_superstep_id(), size + 1, lambda: Staircase(size, chunk)) as staircase:
            return await self._aggregate(state, config, None, staircase)

    async def _aggregate(
        self,
        state: MoAState,
        config: RunnableConfig,
        reused: list[Proposal] | None,
        staircase: Staircase | None,
    ) -> dict[str, Any]:
        settings = self.settings
        context = _run_context()
        kwargs = {**context.aggregator_kwargs, **settings.call_kwargs(context)}
        model: ChatRunnable = self.model
        tools_bound = "tools" in kwargs
        if tools_bound:
            # A call reusing its turn's whole proposals (``fanout``) does not run in staircase rounds.
            if reason := settings.options.why_no_tools(in_rounds=staircase is not None):
                raise AggregatorError(reason)
            tools, tool_choice = kwargs.pop("tools"), kwargs.pop("tool_choice", None)
            bind_kwargs = {k: kwargs.pop(k) for k in ("parallel_tool_calls", "strict") if k in kwargs}
            model = self.model.bind_tools(tools, tool_choice=tool_choice, **bind_kwargs)
        # A call-time ``model=`` override (LangChain's convention) names the aggregator's model.
        label = kwargs["model"] if isinstance(kwargs.get("model"), str) else self.label
        started, last_layer = time.perf_counter(), None
        try:
            if staircase is None:
                chunks, record = await self._whole(state, config, model, label, reused, kwargs, tools_bound)
            else:
                chunks, record = await self._in_rounds(state, config, model, label, staircase, kwargs)
                last_layer = await staircase.finish()
        except MoAError:
            raise
        except Exception as error:
            at = f" (endpoint {endpoint})" if (endpoint := endpoint_of(self.model)) else ""
            raise aggregator_error(f"aggregator ({label}) failed: {_error_text(error)}{at}", error) from error
        if not chunks:
            raise AggregatorError(f"aggregator ({label}) returned nothing")
        latency = time.perf_counter() - started
        answer = self._answer(state, chunks, latency, label, reused, record, last_layer)
        emit(Answer(message=answer))
        return {"messages": [answer]}

    async def _whole(
        self,
        state: MoAState,
        config: RunnableConfig,
        model: ChatRunnable,
        label: str,
        reused: list[Proposal] | None,
        kwargs: dict[str, Any],
        tools_bound: bool,
    ) -> tuple[list[AIMessageChunk], dict[str, Any]]:
        """The aggregation of whole proposals (the paper's MoA): the answer's chunks and its record."""
        settings, options = self.settings, self.settings.options
        if reused is not None:  # this call of the turn reuses its proposals (``fanout``)
            kept, voters = [p for p in reused if p["content"] is not None], len(reused)
        else:  # the last layer that ran (``early_exit`` and ``cascade`` may have skipped some)
            layers = _ran(state, self.layer_nodes)
            last = layers[-1] if layers else []
            kept = _kept(state, len(layers), last, options.min_proposals)
            voters = sum("skipped" not in state["proposals"][n] for n in last)
            exit_chunks, exit_record = await self._exit(state, last, tools_bound)
            if exit_chunks:
                return exit_chunks, exit_record
        references = [p["content"] or "" for p in kept]
        emit(AggregatorStarted(model=label, references=len(references)))
        chunks = list[AIMessageChunk]()
        strategy = self.strategy
        async with settings.policy.aggregating():
            rng = _run_context().rng or self.rng
            models = [p["model"] for p in kept]
            given = aggregation.Given(
                state["messages"], references, options.aggregator_prompt, rng, voters, models
            )
            plan = await strategy.aplan(given)
            if reused is None:
                plan.record |= exit_record
            if plan.settled is not None:  # no aggregator call needed (``majority``, a function)
                plan.record["aggregator_called"] = False
                chunks.append(AIMessageChunk(content=plan.settled))
                emit(Token(chunk=chunks[-1]))
            elif not strategy.reply_is_answer:  # the reply names a proposal (``select``): that is the answer
                reply = await model.ainvoke(plan.messages, config, **kwargs)
                text, choice = strategy.pick(reply.text, references)
                plan.record |= choice
                usage = getattr(reply, "usage_metadata", None)
                chunks.append(AIMessageChunk(content=text, usage_metadata=usage))
                emit(Token(chunk=chunks[-1]))
            else:
                async for chunk in model.astream(plan.messages, config, **kwargs):
                    chunk = as_chunk(chunk)  # a model without streaming yields one whole AIMessage
                    chunks.append(chunk)
                    emit(Token(chunk=chunk))
        return chunks, plan.record

    async def _exit(
        self, state: MoAState, last: list[str], tools_bound: bool
    ) -> tuple[list[AIMessageChunk], dict[str, Any]]:
        """With ``early_exit``, when the last layer that ran agreed: the chosen proposal as the answer
        (no aggregator call) and its record. Without an exit, what the record says about agreement."""
        share = self.settings.options.early_exit
        skipped = [n for nodes in self.layer_nodes for n in nodes if "skipped" in state["proposals"][n]]
        record: dict[str, Any] = {"skipped": skipped} if skipped else {}
        agreed = None
        if share is not None and last:
            ran = [p for n in last if "skipped" not in (p := state["proposals"][n])]
            try:
                agreed = await self.settings.judge.consensus(ran, share)
            except Exception as error:  # the embedding model failed: the aggregator decides
                record["early_exit"] = {"error": _error_text(error)}
        if agreed is not None and tools_bound:  # the aggregator may call a tool the caller asked for
            record["early_exit"] = agreed.record() | {"declined": "tools are bound: the aggregator answers"}
        elif agreed is not None:
            text = state["proposals"][last[agreed.chosen - 1]]["content"] or ""
            emit(Agreed(layer=agreed.layer, agreeing=agreed.agreeing, chosen=agreed.chosen,
                        skipped=[*skipped, AGGREGATOR_NODE]))  # fmt: skip
            chunk = AIMessageChunk(content=text)
            emit(Token(chunk=chunk))
            exit_record = {"early_exit": agreed.record(), "aggregator_called": False}
            return [chunk], record | exit_record
        if skipped:
            emit(Agreed(layer=len(_ran(state, self.layer_nodes)), agreeing=[], chosen=None, skipped=skipped))
        return [], record

    async def _in_rounds(
        self,
        state: MoAState,
        config: RunnableConfig,
        model: ChatRunnable,
        label: str,
        staircase: Staircase,
        kwargs: dict[str, Any],
    ) -> tuple[list[AIMessageChunk], dict[str, Any]]:
        """Staircase aggregation while the last layer streams: the answer's chunks and its record."""
        options, policy = self.settings.options, self.settings.policy
        size = len(staircase.streams)
        order = self.strategy.order(size, _run_context().rng or self.rng)
        record: dict[str, Any] = {"strategy": self.strategy.name}
        if order != list(range(size)):
            record["order"] = [i + 1 for i in order]
        max_tokens = kwargs.pop("max_tokens", None)
        async with within(policy.aggregator_timeout, "aggregator_timeout"):
            chunks, rounds = await aggregate_in_rounds(
                model, state["messages"], staircase, prompt=options.aggregator_prompt, order=order,
                prefill=prefills(options.staircase_layout, self.model), min_proposals=options.min_proposals,
                max_tokens=max_tokens, label=label, slot=policy.limit.slot, config=config, kwargs=kwargs,
            )  # fmt: skip
        return chunks, record | {"staircase": rounds}

    def _answer(
        self,
        state: MoAState,
        chunks: list[AIMessageChunk],
        latency: float,
        label: str,
        reused: list[Proposal] | None,
        record: dict[str, Any],
        last_layer: list[Proposal] | None,
    ) -> AIMessage:
        merged = add_ai_message_chunks(*chunks) if len(chunks) > 1 else chunks[0]  # one merge, at the end
        message = message_chunk_to_message(merged)
        proposals = state.get("proposals") or {}
        # Reused proposals ran (and were counted) in an earlier call: this one reports none of its own.
        earlier = self.layer_nodes if last_layer is None else self.layer_nodes[:-1]
        layers = [] if reused is not None else [[proposals[n] for n in nodes] for nodes in earlier]
        layers = [ran for layer in layers if (ran := [p for p in layer if "skipped" not in p])]
        if last_layer is not None:  # with ``staircase``, the last layer ran beside this node
            layers.append(last_layer)
        called = record.pop("aggregator_called", True)
        reported = [p["usage"] for layer in layers for p in layer if p["usage"]] + [merged.usage_metadata]
        # A call that answered without saying what it spent makes the total unknown, not smaller.
        missing = [p["node"] for layer in layers for p in layer if p["usage"] is None and _answered(p)]
        if called and merged.usage_metadata is None:
            missing.append(AGGREGATOR_NODE)
        usage = None
        if any(reported) and not missing:
            usage = functools.reduce(add_usage, [u for u in reported if u])
        moa: dict[str, Any] = {
            "layers": layers,
            "aggregator": {"model": label, "usage": merged.usage_metadata, "latency_s": round(latency, 4)},
        }
        if missing:
            moa["usage_missing"] = missing
        moa["cost"] = self.settings.pricer.record(
            layers, self.settings.models, self.model, merged.usage_metadata, called
        )
        if staircase := record.pop("staircase", None):
            moa["staircase"] = staircase
        for key in ("early_exit", "skipped"):  # what agreement saved (``early_exit``, ``cascade``)
            if key in record:
                moa[key] = record.pop(key)
        if not called:
            moa["aggregator"]["called"] = False
        if record and record.get("strategy") != "synthesize":  # the paper's way goes without saying
            moa["aggregation"] = record
        if reused is not None:
            moa["reused_proposals"] = reused
        return AIMessage(
            content=message.content,
            # The id of the streamed chunks: a LangGraph "messages" stream shows the answer once.
            id=merged.id,
            tool_calls=getattr(message, "tool_calls", []),
            invalid_tool_calls=getattr(message, "invalid_tool_calls", []),
            usage_metadata=usage,
            response_metadata={
                "model_name": f"moa/{label}",
                "model_provider": "moa",
                # Whether the answer ran out of tokens is the aggregator's to say.
                **{
                    k: v for k, v in merged.response_metadata.items() if k in ("finish_reason", "stop_reason")
                },
                "moa": moa,
            },
        )
