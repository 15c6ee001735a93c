"""What a MoA graph run holds: the conversation, each proposer's proposal, and per-run options."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, NotRequired, TypedDict

from langchain_core.messages.ai import UsageMetadata
from langgraph.graph import MessagesState

__all__ = ["MoAContext", "MoAState", "Proposal"]


class Proposal(TypedDict):
    """One proposer's answer (or failure) in one layer."""

    node: str
    """Graph node that produced it."""
    layer: int
    """Proposer layer, from 1."""
    index: int
    """Position in the proposer list, from 1."""
    model: str
    """The proposer model's name."""
    content: str | None
    """The answer's text; ``None`` when the proposer failed."""
    error: str | None
    """Why the proposer failed (``"TimeoutError: ..."``); ``None`` when it answered."""
    usage: UsageMetadata | None
    """Token usage the provider reported, if any."""
    latency_s: float
    """Seconds from the model call's start (once it had a ``max_concurrency`` slot) to its end;
    0 when it was cut before it started."""
    cut: bool
    """Whether ``proposal_quorum`` or ``layer_deadline`` cut this proposer short."""
    skipped: NotRequired[str]
    """Why this proposer did not run (``early_exit``, ``cascade``); such a proposal has no content, no
    error, and is left out of the answer's record."""


def _merge_proposals(old: dict[str, Proposal], new: dict[str, Proposal]) -> dict[str, Proposal]:
    # Keyed by node: each turn overwrites every entry before anyone reads it.
    return {**old, **new}


class MoAState(MessagesState):
    """Graph state: the conversation plus this turn's proposals, keyed by node name."""

    proposals: Annotated[dict[str, Proposal], _merge_proposals]


@dataclass(frozen=True)
class MoAContext:
    """Per-run options (LangGraph run context); ``None`` keeps the graph's default."""

    temperature: float | None = None
    """Sampling temperature for every proposer and aggregator call."""
    max_tokens: int | None = None
    """Token limit of every proposer and aggregator answer."""
    rng: random.Random | None = None
    """The random orders of ``aggregation="shuffle"`` for this run: the calling model's own sequence
    (its ``seed``), so that models differing only in their seed share one graph; ``None``: the graph's."""
    proposal_text: bool = False
    """Every proposer streams its answer, each token a ``ProposalChunk`` event (a live view asked)."""
    aggregator_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Extra call arguments for the aggregator alone: ``tools``/``tool_choice`` (bound with its own
    ``bind_tools``), ``stop`` and any other invocation keyword."""
