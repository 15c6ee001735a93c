"""How the aggregator turns the last layer's proposals into the answer (the ``aggregation`` option).

A strategy is a ``Strategy`` object that says what the aggregator node needs to know: its name, whether
the aggregator can call tools with it, whether the model's reply is the answer (else it names a
proposal), whether it can aggregate proposals still being written (``staircase``), and how it
aggregates (``plan``). The built-in ones, by name:

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
  ("Answer: B", "the answer is 42", ``\\boxed{42}``, or a reply that is only a letter or a number:
  ``answers.stated_answer``), the first of those proposals is the answer, verbatim, and the aggregator
  is not called; otherwise the paper's prompt. It cannot call tools (a settled answer would skip them).
- ``"confidence"``: SLM-MUX (Wang et al. 2025, arXiv 2510.05077): the proposer model whose samples agree
  most with each other wins, and its most frequent final answer is the answer, verbatim; ties go to
  ``confidence_prior`` (e.g. each model's accuracy), else to the proposers' order. No aggregator call;
  it cannot call tools.

Your own: a subclass of ``Strategy`` (override ``plan``, and ``pick`` if the reply names a proposal), or
a plain function ``(conversation, proposals) -> answer`` (text or message, or an awaitable of one),
which ``FunctionStrategy`` wraps. Every answer records what was done in
``response_metadata["moa"]["aggregation"]``.

Examples:
    >>> class Longest(Strategy):
    ...     name = "longest"
    ...     calls_tools = False
    ...     def plan(self, given):
    ...         return Plan([], {"strategy": self.name}, settled=max(given.references, key=len))
"""

from __future__ import annotations

import contextlib
import inspect
import random
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata, add_ai_message_chunks

from langchain_moa.answers import final_answer, stated_answer
from langchain_moa.prompts import inject_references
from langchain_moa.usage import usage_of

if TYPE_CHECKING:
    from langchain_core.runnables import Runnable, RunnableConfig

__all__ = [
    "BUILT_IN",
    "STAIRCASE_STRATEGIES",
    "STRATEGIES",
    "Confidence",
    "FunctionStrategy",
    "Given",
    "Plan",
    "Strategy",
    "aggregate_once",
    "strategy_of",
]

SELECT_PROMPT = (
    "You have been provided with a set of responses from various models to the latest user query. "
    "Evaluate which response is the most consistent with the others, that is, which one agrees with the "
    "majority of the responses. Reply with the number of that response only.\n\nResponses from models:"
)
"""The ``select`` strategy's question to the aggregator (universal self-consistency)."""


@dataclass(frozen=True)
class Given:
    """What a strategy aggregates: the conversation, the last layer's answers, and the prompt."""

    conversation: Sequence[BaseMessage]
    references: list[str]
    """The proposals' texts, in proposer order."""
    prompt: str
    """The aggregate-and-synthesize prompt (the paper's, unless the user gave another)."""
    rng: random.Random
    """The random orders of this graph (``seed``)."""
    voters: int | None = None
    """How many proposers were asked (a failed one counts as not agreeing); default one per reference."""
    models: Sequence[str] = ()
    """The model of each reference (its label), when known."""

    def synthesis(
        self, *, prompt: str | None = None, references: list[str] | None = None
    ) -> list[BaseMessage]:
        """The paper's request: the references after the prompt, in the leading system message."""
        return inject_references(
            self.conversation, self.prompt if prompt is None else prompt,
            self.references if references is None else references,
        )  # fmt: skip


@dataclass
class Plan:
    """One aggregation: what the aggregator model is asked, and what the answer records."""

    messages: list[BaseMessage]
    record: dict[str, Any] = field(default_factory=dict)
    settled: str | None = None
    """The answer when no aggregator call is needed (``majority`` with a strict majority, a function)."""


class Strategy:
    """An aggregation strategy. The defaults are the paper's: subclass and override what differs."""

    name: ClassVar[str] = "synthesize"
    """How records, drawings and the command line name it."""
    calls_tools: ClassVar[bool] = True
    """Whether the aggregator can call tools (and answer in a schema) with it."""
    reply_is_answer: ClassVar[bool] = True
    """Whether the aggregator's reply is the answer (else it names a proposal: see ``pick``)."""
    reads_partial_proposals: ClassVar[bool] = False
    """Whether it can aggregate proposals still being written (``staircase``)."""

    def order(self, size: int, rng: random.Random) -> list[int]:
        """The proposals (indices from 0) in the order the references list them."""
        return list(range(size))

    def plan(self, given: Given) -> Plan:
        """The aggregator's request for ``given`` proposals, or the answer settled without it."""
        return Plan(given.synthesis(), {"strategy": self.name})

    async def aplan(self, given: Given) -> Plan:
        """``plan``, awaited (a strategy that answers by itself may need to await)."""
        return self.plan(given)

    def pick(self, reply: str, references: list[str]) -> tuple[str, dict[str, Any]]:
        """When the reply is not the answer: the answer it names, and what to record about the choice."""
        return reply, {}

    async def answer(
        self,
        plan: Plan,
        model: Runnable[Any, BaseMessage],
        references: list[str],
        config: RunnableConfig | None = None,
        /,
        **kwargs: Any,  # the call's own (``model=`` too, LangChain's call-time override)
    ) -> AsyncIterator[AIMessageChunk]:
        """The answer's chunks for ``plan``: the settled answer without a call; else the aggregator's
        reply, streamed as it is written when it is the answer, or whole when it names a proposal
        (``pick``, whose choice goes into ``plan.record``)."""
        # Here, not at the top: the command line reads the strategies' names without the engine.
        from langchain_moa.conversation import as_chunk

        if plan.settled is not None:
            yield AIMessageChunk(content=plan.settled)
        elif self.reply_is_answer:
            # Closed on leaving: a cancelled answer stops its HTTP stream at once.
            async with contextlib.aclosing(model.astream(plan.messages, config, **kwargs)) as stream:
                async for chunk in stream:
                    yield as_chunk(chunk)  # a model without streaming yields one whole AIMessage
        else:
            reply = await model.ainvoke(plan.messages, config, **kwargs)
            text, choice = self.pick(reply.text, references)
            plan.record |= choice
            yield AIMessageChunk(content=text, usage_metadata=usage_of(reply))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class Synthesize(Strategy):
    reads_partial_proposals = True


class Shuffle(Strategy):
    name = "shuffle"
    reads_partial_proposals = True

    def order(self, size: int, rng: random.Random) -> list[int]:
        return rng.sample(range(size), size)

    def plan(self, given: Given) -> Plan:
        order = self.order(len(given.references), given.rng)
        record = {"strategy": self.name, "order": [i + 1 for i in order]}
        return Plan(given.synthesis(references=[given.references[i] for i in order]), record)


class Select(Strategy):
    name = "select"
    calls_tools = False
    reply_is_answer = False

    def plan(self, given: Given) -> Plan:
        return Plan(given.synthesis(prompt=SELECT_PROMPT), {"strategy": self.name})

    def pick(self, reply: str, references: list[str]) -> tuple[str, dict[str, Any]]:
        """The proposal the aggregator named, verbatim."""
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


class Tally(Strategy):
    name = "tally"

    def plan(self, given: Given) -> Plan:
        counts = Counter(final_answer(r) for r in given.references)
        total = len(given.references)
        votes = ", ".join(f"{answer!r} ({n} of {total})" for answer, n in counts.most_common())
        preamble = f"The responses' final answers, with how many responses give each: {votes}.\n\n"
        return Plan(given.synthesis(prompt=preamble + given.prompt), {"strategy": self.name})


class Majority(Strategy):
    name = "majority"
    calls_tools = False

    def plan(self, given: Given) -> Plan:
        answers = [stated_answer(r) for r in given.references]
        counts = Counter(a for a in answers if a is not None)
        top, count = counts.most_common(1)[0] if counts else (None, 0)
        voting = given.voters or len(given.references)
        vote = {"strategy": self.name, "agreeing": count, "of": voting}
        if count * 2 > voting:
            chosen = answers.index(top)
            return Plan([], vote | {"answer": top, "chosen": chosen + 1}, settled=given.references[chosen])
        return Plan(given.synthesis(), dict(vote))


class Confidence(Strategy):
    """SLM-MUX's selection (Wang et al., arXiv 2510.05077): each proposer model is sampled several
    times; the model whose samples agree most with each other wins, and its most frequent final answer
    is the answer (its first proposal giving it, verbatim). Ties go to ``prior`` (the higher number,
    e.g. a model's accuracy), else to the proposers' order. No aggregator call."""

    name = "confidence"
    calls_tools = False

    def __init__(self, prior: Mapping[str, float] | None = None) -> None:
        self.prior = dict(prior or {})

    def plan(self, given: Given) -> Plan:
        models = list(given.models) or [f"proposer {i}" for i in range(1, len(given.references) + 1)]
        samples: dict[str, list[int]] = {}
        for i, model in enumerate(models):
            samples.setdefault(model, []).append(i)
        answers = [final_answer(r) for r in given.references]
        scores: dict[str, dict[str, Any]] = {}
        for model, indices in samples.items():
            answer, count = Counter(answers[i] for i in indices).most_common(1)[0]
            scores[model] = {"answer": answer, "agreeing": count, "of": len(indices)}
        order = list(samples)  # first appearance: the proposers' order
        winner = max(
            order,
            key=lambda m: (scores[m]["agreeing"] / scores[m]["of"], self.prior.get(m, 0.0), -order.index(m)),
        )
        chosen = next(i for i in samples[winner] if answers[i] == scores[winner]["answer"])
        record = {"strategy": self.name, "models": scores, "winner": winner, "chosen": chosen + 1}
        return Plan([], record, settled=given.references[chosen])


class FunctionStrategy(Strategy):
    """A plain function ``(conversation, proposals) -> answer`` as a strategy: it answers by itself."""

    calls_tools = False

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function

    @property  # type: ignore[misc]
    def name(self) -> str:  # type: ignore[override]
        return getattr(self.function, "__name__", type(self.function).__name__)

    async def aplan(self, given: Given) -> Plan:
        result = self.function(list(given.conversation), given.references)
        result = await result if inspect.isawaitable(result) else result
        text = result.text if isinstance(result, BaseMessage) else str(result)
        return Plan([], {"strategy": self.name}, settled=text)


BUILT_IN: dict[str, Strategy] = {
    s.name: s for s in (Synthesize(), Shuffle(), Select(), Tally(), Majority(), Confidence())
}
"""The built-in strategies, by name."""
STRATEGIES = tuple(BUILT_IN)
"""The built-in strategies' names."""
STAIRCASE_STRATEGIES = tuple(name for name, s in BUILT_IN.items() if s.reads_partial_proposals)
"""The built-in strategies that can aggregate proposals still being written (``staircase``)."""


def strategy_of(aggregation: str | Strategy | Callable[..., Any]) -> Strategy:
    """The strategy an ``aggregation`` option names: a built-in's name, a ``Strategy`` or a function."""
    if isinstance(aggregation, Strategy):
        return aggregation
    if isinstance(aggregation, str):
        return BUILT_IN[aggregation]
    return FunctionStrategy(aggregation)


async def aggregate_once(
    model: Any,
    conversation: Sequence[BaseMessage],
    references: list[str],
    strategy: str | Strategy,
    /,
    *,
    prompt: str,
    rng: random.Random,
    voters: int | None = None,
    models: Sequence[str] = (),
    **kwargs: Any,
) -> tuple[str, dict[str, Any], UsageMetadata | None]:
    """One aggregation of given proposals with at most one aggregator reply, as the aggregator node
    makes it (``Strategy.answer``), outside a graph: what ``moa eval exact`` compares on the proposals it
    journalled. Returns the answer, its record and the aggregator's usage (``None`` if not called)."""
    chosen = strategy_of(strategy)
    plan = await chosen.aplan(Given(conversation, references, prompt, rng, voters, models))
    chunks = [chunk async for chunk in chosen.answer(plan, model, references, **kwargs)]
    if plan.settled is not None:
        return plan.settled, plan.record, None
    reply = add_ai_message_chunks(AIMessageChunk(content=""), *chunks)
    return reply.text, plan.record, usage_of(reply)
