"""Whether a layer's proposals agree: what ``early_exit`` and ``cascade`` decide by.

Proposals agree when at least a share of them (``early_exit``; all of them for a ``cascade`` without
it) state the same final answer, read by ``answers.stated_answer`` ("Answer: B", "the answer is 42").
A proposal that failed, was skipped or states no answer agrees with nothing. When no proposal states an
answer (free text), an embedding model the user gives (any LangChain ``Embeddings``) groups the
proposals whose cosine similarity reaches ``agreement_threshold``; without one, free text never agrees,
and MoA runs as the paper's.

When proposals agree, MoA answers with one of the agreeing proposals: the first of them to finish for
stated answers (they give the same answer; the quickest costs the caller nothing to wait for), the most
central one (the highest mean similarity to the others) for free text.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_moa.answers import stated_answer

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_moa.state import Proposal

__all__ = ["Consensus", "Judge"]


@dataclass(frozen=True)
class Consensus:
    """Proposals that agree, and the one MoA answers with."""

    layer: int
    agreeing: list[int]
    """The agreeing proposals' indices in their layer (from 1, proposer order)."""
    of: int
    """How many proposals the layer asked for (a failed or skipped one counts as not agreeing)."""
    chosen: int
    """The index of the proposal MoA answers with."""
    why: str
    answer: str | None = None
    """The stated answer they share (``None`` for free text grouped by embeddings)."""

    def record(self) -> dict[str, Any]:
        record = {"layer": self.layer, "agreeing": self.agreeing, "of": self.of, "chosen": self.chosen,
                  "why": self.why}  # fmt: skip
        return record | ({"answer": self.answer} if self.answer is not None else {})


class Judge:
    """Reads agreement among proposals: by stated answers, else by ``embeddings`` (if given)."""

    def __init__(self, *, embeddings: Embeddings | None = None, threshold: float = 0.9) -> None:
        self.embeddings = embeddings
        self.threshold = threshold
        # Every node of the next layer asks about the same proposals: a text embedded once is kept.
        self._vectors: dict[str, list[float]] = {}

    async def consensus(self, proposals: Sequence[Proposal], share: float) -> Consensus | None:
        """The agreement of ``proposals`` (one layer) if at least ``share`` of them agree, else ``None``.

        Raises:
            Exception: whatever the embedding model raised (the caller records it and goes on).
        """
        size = len(proposals)
        answered = [p for p in proposals if p["content"] is not None]
        if not answered:
            return None
        stated = {p["index"]: stated_answer(p["content"] or "") for p in answered}
        counts = Counter(a for a in stated.values() if a is not None)
        if counts:
            answer, count = counts.most_common(1)[0]
            if count / size < share:
                return None
            agreeing = [p for p in answered if stated[p["index"]] == answer]
            first = min(agreeing, key=lambda p: p["latency_s"])
            return Consensus(proposals[0]["layer"], [p["index"] for p in agreeing], size, first["index"],
                             "the first of the agreeing proposals to finish", answer)  # fmt: skip
        if self.embeddings is None:
            return None
        return await self._by_meaning(answered, size, share)

    async def _by_meaning(self, answered: list[Proposal], size: int, share: float) -> Consensus | None:
        vectors = await asyncio.gather(*(self._vector(p["content"] or "") for p in answered))
        similar = [[_cosine(a, b) for b in vectors] for a in vectors]
        groups = [
            [j for j in range(len(answered)) if similar[i][j] >= self.threshold] for i in range(len(answered))
        ]
        group = max(groups, key=len)
        if len(group) / size < share:
            return None
        central = max(group, key=lambda i: sum(similar[i][j] for j in group))
        agreeing = [answered[i]["index"] for i in group]
        why = "the most central of the agreeing proposals"
        return Consensus(answered[0]["layer"], agreeing, size, answered[central]["index"], why)

    async def _vector(self, text: str) -> list[float]:
        if (known := self._vectors.get(text)) is None:
            assert self.embeddings is not None
            known = self._vectors[text] = await self.embeddings.aembed_query(text)
            if len(self._vectors) > 4096:  # a long-lived model answering many questions
                self._vectors.pop(next(iter(self._vectors)))
        return known


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0
