"""The proposer node: one proposer in one layer answers the conversation, seeing the previous layer's
answers. It never raises (see ``nodes``); it may be skipped when others already agree (``early_exit``,
``cascade``) and, in the last layer with ``staircase``, streams its answer to the aggregator (and to
a live view that asked for the proposals' text)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from langchain_core.exceptions import ContextOverflowError
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph._internal._runnable import RunnableCallable

from langchain_moa.conversation import proposer_view
from langchain_moa.errors import OVERFLOW, MoAError
from langchain_moa.events import ProposalReady, ProposerStarted, emit
from langchain_moa.models import endpoint_of, model_label
from langchain_moa.nodes import ChatRunnable, NodeSettings, error_text, kept, node, run_context, superstep_id
from langchain_moa.prompts import inject_references
from langchain_moa.staircase.streams import Staircase, Staircases, stream_proposal
from langchain_moa.state import MoAState, Proposal
from langchain_moa.tail_latency import ProposalCut
from langchain_moa.usage import usage_of

__all__ = ["ProposerNode"]


class ProposerNode:
    """One proposer in one layer: answers the conversation, seeing the previous layer's answers."""

    def __init__(
        self,
        name: str,
        model: BaseChatModel,
        *,
        layer: int,
        index: int,
        layer_size: int,
        references_from: Sequence[str],
        settings: NodeSettings,
        staircases: Staircases | None = None,
        earlier_layers: Sequence[Sequence[str]] = (),
        cascade_first: Sequence[str] = (),
    ) -> None:
        self.name = name
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
        self.staircases = staircases
        """With ``staircase``, the last layer streams its proposals to the aggregator as they are written."""
        self.earlier_layers = [list(nodes) for nodes in earlier_layers]
        """The nodes of each earlier layer: with ``early_exit``, one that agreed skips this one."""
        self.cascade_first = list(cascade_first)
        """With ``cascade``, the first proposers of this layer (this one runs after them): when they
        agree, this one is skipped."""

    def runnable(self) -> RunnableCallable:
        return node(self.name, self.ainvoke)

    async def ainvoke(self, state: MoAState, config: RunnableConfig) -> dict[str, Any]:
        if self.staircases is None:
            if (why := await self._why_skip(state)) is not None:
                return {"proposals": {self.name: self._proposal(None, None, 0.0) | {"skipped": why}}}
            return await self._propose(state, config, None)
        with self.staircases.join() as staircase:
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
        references = [
            p["content"] or ""
            for p in kept(state, self.layer - 1, self.references_from, settings.options.min_proposals)
        ]
        messages = inject_references(
            proposer_view(state["messages"]), settings.options.aggregator_prompt, references
        )
        context = run_context()
        kwargs = settings.call_kwargs(context, proposer=True)
        started: float | None = None

        async def call() -> BaseMessage:
            nonlocal started
            emit(ProposerStarted(node=self.name, layer=self.layer, index=self.index, model=self.label))
            started = time.perf_counter()
            if staircase is None and not context.proposal_text:
                return await self.model.ainvoke(messages, config, **kwargs)
            return await stream_proposal(
                staircase,
                self.model,
                messages,
                config,
                kwargs,
                node=self.name,
                layer=self.layer,
                index=self.index,
            )

        policy = settings.policy
        with policy.race(superstep_id() if policy.races else "", self.layer, self.layer_size) as race:
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
        return {"proposals": {self.name: proposal}}

    def _proposal(self, answer: BaseMessage | None, error: BaseException | None, latency: float) -> Proposal:
        proposal = Proposal(
            node=self.name,
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
            proposal["usage"] = usage_of(answer)  # tokens spent, even on nothing
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
            proposal["error"] = error_text(error)
            if self.endpoint:  # an unreachable endpoint is found at once
                proposal["error"] += f" (endpoint {self.endpoint})"
        return proposal
