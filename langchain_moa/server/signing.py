"""Proposals a client carries between calls are trusted only when this server signed them.

With ``fanout="turn"`` the later calls of a turn reuse the proposals of the turn's previous answer,
which travel in the conversation: the server returns them in the answer's ``moa`` record, and a
client gives that record back on the assistant message (``{"role": "assistant", ..., "moa": {...}}``).
Since a proposal becomes part of the aggregator's prompt, a client must not be able to make one up:
the server signs each record it returns (HMAC-SHA256, with a key of its own, over its proposals and the
conversation they answered) and a carried record whose signature is missing or wrong, whose shape is
not a record's, or which was signed for another conversation (a record replayed elsewhere would skip
the proposers there) is ignored, so the proposers run again, and the answer says so. In Python,
carried proposals are the caller's own conversation and are trusted as it is.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any

from langchain_moa.fanout import final_proposals

__all__ = ["ProposalSigner"]

_PROPOSAL_FIELDS = {
    "node": str,
    "layer": int,
    "index": int,
    "model": str,
    "latency_s": (int, float),
    "cut": bool,
}


class ProposalSigner:
    """Signs the ``moa`` records a server returns and checks the ones clients carry back."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)  # one per process unless the replicas share one

    def _digest(self, proposals: list[Any], conversation: list[Any]) -> str:
        signed = {"proposals": proposals, "conversation": conversation}
        canonical = json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hmac.new(self._key, canonical.encode(), hashlib.sha256).hexdigest()

    def sign(self, moa: dict[str, Any] | None, conversation: list[Any]) -> dict[str, Any] | None:
        """The record with the signature of its final-layer proposals (what a later call may reuse)
        for ``conversation``, the messages they answered (as the client sent them, records aside)."""
        if not moa:
            return moa
        return {**moa, "signature": self._digest(final_proposals(moa), conversation)}

    def verify(self, moa: Any, conversation: list[Any]) -> tuple[dict[str, Any] | None, str | None]:
        """The carried record if this server signed it as it is for ``conversation`` (the messages
        before the one carrying it), else ``None`` and why it is ignored."""
        if not isinstance(moa, dict):
            return None, "malformed: the moa record is not an object"
        try:
            proposals = final_proposals(moa)
        except (TypeError, KeyError, IndexError, AttributeError):
            return None, "malformed: the moa record has no proposals"
        if not proposals or not all(_is_proposal(p) for p in proposals):
            return None, "malformed: the moa record's proposals are not proposals"
        signature = moa.get("signature")
        if not isinstance(signature, str):
            return None, "unsigned: the moa record carries no signature of this server"
        if not hmac.compare_digest(signature, self._digest(proposals, conversation)):
            return None, (
                "forged or replayed: the moa record's signature does not match its proposals and the "
                "conversation before it"
            )
        return {"layers": [proposals]}, None


def _is_proposal(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and all(isinstance(value.get(k), t) for k, t in _PROPOSAL_FIELDS.items())
        and (value.get("content") is None or isinstance(value["content"], str))
        and (value.get("error") is None or isinstance(value["error"], str))
        and (value.get("usage") is None or isinstance(value["usage"], dict))
    )
