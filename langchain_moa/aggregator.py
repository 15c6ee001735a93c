"""The aggregator node: the answer from the last layer's proposals, made by the aggregation strategy
(the paper's synthesis by default) and streamed; or, with ``early_exit``, the agreeing proposal itself;
or, with ``staircase``, written in rounds beside the last layer (``staircase.rounds``)."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk
from langchain_core.runnables import RunnableConfig
from langgraph._internal._runnable import RunnableCallable

from langchain_moa import aggregation
from langchain_moa.errors import AggregatorError, MoAError, aggregator_error
from langchain_moa.events import AggregatorStarted, Agreed, Answer, Token, emit
from langchain_moa.fanout import reusable_proposals
from langchain_moa.models import endpoint_of, model_label
from langchain_moa.nodes import ChatRunnable, NodeSettings, error_text, kept, node, ran, run_context
from langchain_moa.records import AGGREGATOR_NODE, answer_message
from langchain_moa.staircase import Staircases, aggregate_while_streaming
from langchain_moa.state import MoAState, Proposal

__all__ = ["AggregatorNode"]


class AggregatorNode:
    """Synthesises the last layer's answers into the reply, streaming its tokens."""

    def __init__(
        self,
        model: BaseChatModel,
        *,
        layer_nodes: Sequence[Sequence[str]],
        settings: NodeSettings,
        staircases: Staircases | None = None,
    ) -> None:
        self.model = model
        self.label = model_label(model)
        self.layer_nodes = [list(nodes) for nodes in layer_nodes]
        self.settings = settings
        self.staircases = staircases
        """With ``staircase``: this node runs beside the last layer, reading its proposals as they stream."""
        self.rng = random.Random(settings.options.seed)  # ``shuffle``'s orders: one sequence per graph
        self.strategy = settings.options.strategy()

    def runnable(self) -> RunnableCallable:
        return node(AGGREGATOR_NODE, self.ainvoke)

    async def ainvoke(self, state: MoAState, config: RunnableConfig) -> dict[str, Any]:
        settings, context = self.settings, run_context()
        kwargs = {**context.aggregator_kwargs, **settings.call_kwargs(context)}
        reused = reusable_proposals(state["messages"], settings.options.fanout)
        in_rounds = self.staircases is not None and reused is None
        tools_bound = "tools" in kwargs
        model = self._bound(kwargs, in_rounds)
        # A call-time ``model=`` override (LangChain's convention) names the aggregator's model.
        label = kwargs["model"] if isinstance(kwargs.get("model"), str) else self.label
        rng = context.rng or self.rng
        started = time.perf_counter()
        try:
            if in_rounds:
                assert self.staircases is not None
                with self.staircases.join() as staircase:
                    chunks, record = await aggregate_while_streaming(
                        model, state["messages"], staircase, options=settings.options, strategy=self.strategy,
                        rng=rng, policy=settings.policy, aggregator=self.model, label=label, config=config,
                        kwargs=kwargs,
                    )  # fmt: skip
                    last_layer = await staircase.finish()
            else:
                chunks, record = await self._whole(
                    state, config, model, label, reused, kwargs, rng, tools_bound
                )
                last_layer = None
        except MoAError:
            raise
        except Exception as error:
            at = f" (endpoint {endpoint})" if (endpoint := endpoint_of(self.model)) else ""
            raise aggregator_error(f"aggregator ({label}) failed: {error_text(error)}{at}", error) from error
        if not chunks:
            raise AggregatorError(f"aggregator ({label}) returned nothing")
        answer = answer_message(
            chunks, self._layers_that_ran(state, reused, last_layer), label=label,
            latency=time.perf_counter() - started, record=record,
            called=record.pop("aggregator_called", True), reused=reused, pricer=settings.pricer,
            models=settings.models, aggregator=self.model,
        )  # fmt: skip
        emit(Answer(message=answer))
        return {"messages": [answer]}

    def _bound(self, kwargs: dict[str, Any], in_rounds: bool) -> ChatRunnable:
        """The aggregator with the caller's tools bound (taken out of ``kwargs``), if any."""
        if "tools" not in kwargs:
            return self.model
        # A call reusing its turn's whole proposals (``fanout``) does not run in staircase rounds.
        if reason := self.settings.options.why_no_tools(in_rounds=in_rounds):
            raise AggregatorError(reason)
        tools, tool_choice = kwargs.pop("tools"), kwargs.pop("tool_choice", None)
        bind_kwargs = {k: kwargs.pop(k) for k in ("parallel_tool_calls", "strict") if k in kwargs}
        return self.model.bind_tools(tools, tool_choice=tool_choice, **bind_kwargs)

    def _layers_that_ran(
        self, state: MoAState, reused: list[Proposal] | None, last_layer: list[Proposal] | None
    ) -> list[list[Proposal]]:
        """The proposals this call ran, by layer (reused ones ran and were counted in an earlier call)."""
        if reused is not None:
            return []
        proposals = state.get("proposals") or {}
        earlier = self.layer_nodes if last_layer is None else self.layer_nodes[:-1]
        layers = [
            ran for nodes in earlier if (ran := [p for n in nodes if "skipped" not in (p := proposals[n])])
        ]
        if last_layer is not None:  # with ``staircase``, the last layer ran beside this node
            layers.append(last_layer)
        return layers

    async def _whole(
        self,
        state: MoAState,
        config: RunnableConfig,
        model: ChatRunnable,
        label: str,
        reused: list[Proposal] | None,
        kwargs: dict[str, Any],
        rng: random.Random,
        tools_bound: bool,
    ) -> tuple[list[AIMessageChunk], dict[str, Any]]:
        """The aggregation of whole proposals (the paper's MoA): the answer's chunks and its record."""
        settings, options = self.settings, self.settings.options
        record: dict[str, Any] = {}
        if reused is not None:  # this call of the turn reuses its proposals (``fanout``)
            answers, voters = [p for p in reused if p["content"] is not None], len(reused)
        else:  # the last layer that ran (``early_exit`` and ``cascade`` may have skipped some)
            layers = ran(state, self.layer_nodes)
            last = layers[-1] if layers else []
            answers = kept(state, len(layers), last, options.min_proposals)
            voters = sum("skipped" not in state["proposals"][n] for n in last)
            exit_chunks, record = await self._exit(state, last, tools_bound=tools_bound)
            if exit_chunks:
                return exit_chunks, record
        references = [p["content"] or "" for p in answers]
        emit(AggregatorStarted(model=label, references=len(references)))
        chunks: list[AIMessageChunk] = []
        async with settings.policy.aggregating():
            given = aggregation.Given(
                state["messages"],
                references,
                options.aggregator_prompt,
                rng,
                voters,
                [p["model"] for p in answers],
            )
            plan = await self.strategy.aplan(given)
            async for chunk in self.strategy.answer(plan, model, references, config, **kwargs):
                chunks.append(chunk)
                emit(Token(chunk=chunk))
        if plan.settled is not None:  # no aggregator call was needed (``majority``, a function)
            plan.record["aggregator_called"] = False
        return chunks, record | plan.record

    async def _exit(
        self, state: MoAState, last: list[str], *, tools_bound: bool
    ) -> tuple[list[AIMessageChunk], dict[str, Any]]:
        """With ``early_exit``, when the last layer that ran agreed: the chosen proposal as the answer
        (no aggregator call) and its record. Without an exit, what the record says about agreement."""
        share = self.settings.options.early_exit
        skipped = [n for nodes in self.layer_nodes for n in nodes if "skipped" in state["proposals"][n]]
        record: dict[str, Any] = {"skipped": skipped} if skipped else {}
        agreed = None
        if share is not None and last:
            answers = [p for n in last if "skipped" not in (p := state["proposals"][n])]
            try:
                agreed = await self.settings.judge.consensus(answers, share)
            except Exception as error:  # the embedding model failed: the aggregator decides
                record["early_exit"] = {"error": error_text(error)}
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
            emit(Agreed(layer=len(ran(state, self.layer_nodes)), agreeing=[], chosen=None, skipped=skipped))
        return [], record
