"""Proposal reuse in tool loops (``fanout``): run the proposers once per user turn, or every N calls.

Inside an agent's tool loop every model call is a MoA call. With ``fanout="turn"`` only the first call
of a user turn (the messages after the last human message) runs the proposers; later calls of the
turn hand the aggregator the final-layer proposals of the turn's previous MoA answer, which the
conversation itself carries (``response_metadata["moa"]``). So reuse needs no state of its own: it
works in ``create_agent``, in LangGraph Server threads and across processes. ``fanout=N`` reruns the
proposers on every N-th call of a turn; ``"call"`` (the default, the paper's MoA) runs them every call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from langchain_moa.state import Proposal

__all__ = ["Fanout", "final_proposals", "reusable_proposals"]

Fanout = Literal["call", "turn"] | int
"""When the proposers run: every ``"call"``, once per ``"turn"``, or every N calls of a turn."""


def final_proposals(moa: dict[str, Any]) -> list[Proposal]:
    """The last proposer layer behind a MoA answer's metadata: run then, or reused then."""
    layers = moa.get("layers") or []
    return list(layers[-1]) if layers else list(moa.get("reused_proposals") or [])


def _turn_answers(messages: Sequence[BaseMessage]) -> list[AIMessage]:
    """The MoA answers of the current user turn (after its last human message), oldest first."""
    answers: list[AIMessage] = []
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            break
        if isinstance(message, AIMessage) and isinstance(message.response_metadata.get("moa"), dict):
            answers.append(message)
    return answers[::-1]


def reusable_proposals(messages: Sequence[BaseMessage], fanout: Fanout) -> list[Proposal] | None:
    """The proposals this call reuses, or ``None`` when the proposers must run."""
    if fanout == "call":
        return None
    answers = _turn_answers(messages)
    if not answers or (isinstance(fanout, int) and len(answers) % fanout == 0):
        return None
    proposals = final_proposals(answers[-1].response_metadata["moa"])
    return proposals if any(p["content"] is not None for p in proposals) else None
