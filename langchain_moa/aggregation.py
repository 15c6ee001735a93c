"""How the aggregator turns the last layer's proposals into the answer (the ``aggregation`` option).

- ``"synthesize"`` (default): the paper's aggregate-and-synthesize prompt, byte for byte, with the
  proposals in proposer order (Wang et al. 2024).
- ``"shuffle"``: the same prompt with the proposals in a fresh random order on every call, against the
  aggregator's position bias (as llm-council shuffles before review); ``seed`` makes the orders
  reproducible, and the order used is recorded.
- ``"select"``: universal self-consistency (Chen et al. 2023, arXiv 2311.17311): the aggregator is
  asked which proposal is the most consistent with the others and the answer is that proposal,
  verbatim. A reply with no usable number falls back to the proposal that shares the most words with
  the others (recorded as ``fallback``). It cannot call tools.
- ``"tally"`` (this project's): the paper's prompt, preceded by how many proposals give each distinct
  final answer (``answers.final_answer``: a stated answer, else the last number, else the choice
  letter, else the last line), so that a small aggregator sees the vote it would otherwise have to
  count itself.
- ``"majority"`` (this project's): when a strict majority of the proposers state the same answer
  ("Answer: B", "the answer is 42", ``\boxed{42}``: ``answers.stated_answer``), the first of those
  proposals is the answer, verbatim, and the aggregator is not called; otherwise the paper's prompt.
  It is the majority vote where the vote is clear and the aggregator where it is not; it is meant for
  questions with one short answer (open-ended proposals state none, so they are always synthesised).
  It cannot call tools (a settled answer would skip them).
- a function ``(conversation, proposals) -> answer`` (text or message, or an awaitable of one): your own.

Every answer records what was done in ``response_metadata["moa"]["aggregation"]``.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage

from langchain_moa.answers import final_answer, stated_answer
from langchain_moa.prompts import inject_references

__all__ = ["STAIRCASE_STRATEGIES", "STRATEGIES", "Plan", "pick", "plan"]

STRATEGIES = ("synthesize", "shuffle", "select", "tally", "majority")
"""The built-in aggregation strategies, by name."""
STAIRCASE_STRATEGIES = ("synthesize", "shuffle")
"""The strategies that can aggregate proposals still being written (``staircase``): the others read
whole proposals (their final answers, or one to pick)."""

SELECT_PROMPT = (
    "You have been provided with a set of responses from various models to the latest user query. "
    "Evaluate which response is the most consistent with the others, that is, which one agrees with the "
    "majority of the responses. Reply with the number of that response only.\n\nResponses from models:"
)
"""The ``select`` strategy's question to the aggregator (universal self-consistency)."""


@dataclass
class Plan:
    """One aggregation: what the aggregator model is asked, and what the answer records."""

    messages: list[BaseMessage]
    record: dict[str, Any] = field(default_factory=dict)
    answer_is_reply: bool = True
    """Whether the aggregator's reply is the answer (else, ``select``, it names a proposal)."""
    settled: str | None = None
    """The answer when no aggregator call is needed (``majority`` with a strict majority)."""


def plan(
    strategy: str,
    conversation: Sequence[BaseMessage],
    references: list[str],
    prompt: str,
    rng: random.Random,
    *,
    voters: int | None = None,
) -> Plan:
    """The aggregator's request for a built-in ``strategy`` (``prompt``: the aggregate-and-synthesize one).
    ``voters``: how many proposers were asked, of whom ``majority`` needs more than half (default: one
    per reference; a failed proposer counts as not agreeing)."""
    if strategy == "shuffle":
        order = rng.sample(range(len(references)), len(references))
        shuffled = [references[i] for i in order]
        record = {"strategy": strategy, "order": [i + 1 for i in order]}
        return Plan(inject_references(conversation, prompt, shuffled), record)
    if strategy == "select":
        return Plan(inject_references(conversation, SELECT_PROMPT, references), {"strategy": strategy}, False)
    if strategy == "tally":
        counts = Counter(final_answer(r) for r in references)
        votes = ", ".join(f"{answer!r} ({n} of {len(references)})" for answer, n in counts.most_common())
        preamble = f"The responses' final answers, with how many responses give each: {votes}.\n\n"
        return Plan(inject_references(conversation, preamble + prompt, references), {"strategy": strategy})
    if strategy == "majority":
        answers = [stated_answer(r) for r in references]
        counts = Counter(a for a in answers if a is not None)
        top, count = counts.most_common(1)[0] if counts else (None, 0)
        voting = voters or len(references)
        vote = {"strategy": strategy, "agreeing": count, "of": voting}
        if count * 2 > voting:
            chosen = answers.index(top)
            return Plan([], vote | {"answer": top, "chosen": chosen + 1}, settled=references[chosen])
        return Plan(inject_references(conversation, prompt, references), dict(vote))
    return Plan(inject_references(conversation, prompt, references), {"strategy": "synthesize"})


def pick(reply: str, references: list[str]) -> tuple[str, dict[str, Any]]:
    """``select``: the proposal the aggregator named, verbatim, and what to record about the choice."""
    numbers = [int(n) for n in re.findall(r"\d+", reply)]
    chosen = next((n for n in numbers if 1 <= n <= len(references)), None)
    if chosen is not None:
        return references[chosen - 1], {"chosen": chosen, "fallback": False}
    # Fallback: the proposal sharing the most words with the others (a self-consistency proxy).
    words = [set(r.lower().split()) for r in references]

    def agreement(i: int) -> float:
        others = [w for j, w in enumerate(words) if j != i]
        return sum(len(words[i] & w) / max(1, len(words[i] | w)) for w in others)

    best = max(range(len(references)), key=agreement)
    return references[best], {"chosen": best + 1, "fallback": True, "reply": reply[:200]}


def describe(strategy: str | Callable[..., Any]) -> str:
    """A strategy's name, for records and drawings."""
    return strategy if isinstance(strategy, str) else getattr(strategy, "__name__", type(strategy).__name__)


async def aggregate_once(
    model: Any,
    conversation: Sequence[BaseMessage],
    references: list[str],
    strategy: str,
    *,
    prompt: str,
    rng: random.Random,
    voters: int | None = None,
    **kwargs: Any,
) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """One aggregation of given proposals with at most one aggregator reply, not streamed: ``select``
    in the graph, and every strategy when ``moa eval exact`` compares them on the proposals it
    journalled. Returns the answer, its record and the aggregator's usage (``None`` if not called)."""
    request = plan(strategy, conversation, references, prompt, rng, voters=voters)
    if request.settled is not None:
        return request.settled, request.record, None
    reply = await model.ainvoke(request.messages, **kwargs)
    usage = getattr(reply, "usage_metadata", None)
    if request.answer_is_reply:
        return reply.text, request.record, usage
    text, choice = pick(reply.text, references)
    return text, request.record | choice, usage
