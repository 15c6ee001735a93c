"""What a MoA answer says about itself: the summed usage of every call and the record of how it was
made (``response_metadata["moa"]``: each proposal, the aggregator, costs, staircase rounds, exits)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, message_chunk_to_message
from langchain_core.messages.ai import add_ai_message_chunks

from langchain_moa.costs import Pricer
from langchain_moa.state import Proposal
from langchain_moa.usage import summed, usage_of

__all__ = ["AGGREGATOR_NODE", "answer_message", "answered"]

AGGREGATOR_NODE = "aggregator"
"""Name of the aggregator node (the last node of every MoA graph)."""


def answered(proposal: Proposal) -> bool:
    """Whether a proposer's model answered (so that it spent tokens it should have reported)."""
    return proposal["content"] is not None or (proposal["error"] or "").startswith("EmptyAnswer")


def answer_message(
    chunks: Sequence[AIMessageChunk],
    layers: list[list[Proposal]],
    *,
    label: str,
    latency: float,
    record: dict[str, Any],
    called: bool,
    reused: list[Proposal] | None,
    pricer: Pricer,
    models: Mapping[str, BaseChatModel],
    aggregator: BaseChatModel,
) -> AIMessage:
    """The MoA answer: the aggregator's chunks merged, with the usage of every call that ran for it
    (``layers``: the proposals that ran) and the record of how it was made."""
    merged = add_ai_message_chunks(*chunks) if len(chunks) > 1 else chunks[0]  # one merge, at the end
    message = message_chunk_to_message(merged)
    aggregator_usage = usage_of(merged)
    # A call that answered without saying what it spent makes the total unknown, not smaller.
    missing = [p["node"] for layer in layers for p in layer if p["usage"] is None and answered(p)]
    if called and aggregator_usage is None:
        missing.append(AGGREGATOR_NODE)
    reported = [u for layer in layers for p in layer if (u := p["usage"])]
    reported += [aggregator_usage] if aggregator_usage else []
    usage = summed(reported) if reported and not missing else None
    moa: dict[str, Any] = {
        "layers": layers,
        "aggregator": {"model": label, "usage": aggregator_usage, "latency_s": round(latency, 4)},
    }
    if missing:
        moa["usage_missing"] = missing
    moa["cost"] = pricer.record(layers, models, aggregator, aggregator_usage, called)
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
            **{k: v for k, v in merged.response_metadata.items() if k in ("finish_reason", "stop_reason")},
            "moa": moa,
        },
    )
