"""The engine side by side: MoA written four ways on the same scripted models, and where the time goes.

- plain ``asyncio.gather`` MoA (the reference implementation's shape, no LangGraph);
- a bare LangGraph graph written directly: a node per proposer per layer and the aggregator, with a
  join node per layer (the shape 0.1 had) and without (every proposer feeds the next layer's);
- ``MoAChatModel.graph`` run directly, and ``MoAChatModel`` itself, async and sync.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

from langchain_core.messages import BaseMessage, HumanMessage
from langgraph.graph import END, START, MessagesState, StateGraph

from langchain_moa import AGGREGATOR_PROMPT, MoAChatModel
from langchain_moa.fakes import ScriptedChatModel
from langchain_moa.prompts import inject_references


def scripted(n: int, sleep: float = 0.0) -> tuple[list[ScriptedChatModel], ScriptedChatModel]:
    proposers = [ScriptedChatModel(answer=f"answer {i} of several words", sleep=sleep) for i in range(n)]
    return proposers, ScriptedChatModel(answer="the final answer in a few words", sleep=sleep)


async def plain_moa(proposers: Sequence[Any], aggregator: Any, question: str, layers: int) -> str:
    """Each layer gathered, then the aggregator streamed: no graph at all."""
    messages: list[BaseMessage] = [HumanMessage(question)]
    references: list[str] = []
    for _ in range(layers - 1):
        prompt = inject_references(messages, AGGREGATOR_PROMPT, references)
        references = [a.text for a in await asyncio.gather(*(p.ainvoke(prompt) for p in proposers))]
    prompt = inject_references(messages, AGGREGATOR_PROMPT, references)
    return "".join([c.text async for c in aggregator.astream(prompt)])


def _merge(old: dict[str, str], new: dict[str, str]) -> dict[str, str]:
    return {**old, **new}


class _State(MessagesState):
    proposals: Annotated[dict[str, str], _merge]


def bare_graph(proposers: Sequence[Any], aggregator: Any, layers: int, *, joins: bool) -> Any:
    """The same shape written directly on LangGraph, nothing else: no events, no checks, no metadata."""
    graph = StateGraph(_State)
    previous: list[str] = []
    entry: Any = START
    for layer in range(1, layers):
        names = [f"layer {layer} #{i}" for i in range(1, len(proposers) + 1)]
        for name, model in zip(names, proposers, strict=True):

            async def propose(
                state: _State, model: Any = model, name: str = name, refs: list[str] = previous
            ) -> dict[str, Any]:
                references = [state["proposals"][r] for r in refs]
                answer = await model.ainvoke(
                    inject_references(state["messages"], AGGREGATOR_PROMPT, references)
                )
                return {"proposals": {name: answer.text}}

            graph.add_node(name, propose)
            graph.add_edge(entry, name)
        if joins:
            graph.add_node(f"layer {layer} done", lambda state: {})
            graph.add_edge(names, f"layer {layer} done")
            entry = f"layer {layer} done"
        else:
            entry = names
        previous = names

    async def aggregate(state: _State) -> dict[str, Any]:
        references = [state["proposals"][r] for r in previous]
        prompt = inject_references(state["messages"], AGGREGATOR_PROMPT, references)
        chunks = [c async for c in aggregator.astream(prompt)]
        answer = chunks[0]
        for chunk in chunks[1:]:
            answer += chunk
        return {"messages": [answer]}

    graph.add_node("aggregator", aggregate)
    graph.add_edge(entry, "aggregator")
    graph.add_edge("aggregator", END)
    return graph.compile()


def contenders(n: int, layers: int, sleep: float) -> dict[str, Callable[[], Awaitable[Any]]]:
    """Each way of answering one question, as a zero-argument coroutine factory."""
    proposers, aggregator = scripted(n, sleep)
    moa = MoAChatModel(proposers=proposers, aggregator=aggregator, layers=layers)
    joined = bare_graph(proposers, aggregator, layers, joins=True)
    direct = bare_graph(proposers, aggregator, layers, joins=False)
    state = {"messages": [HumanMessage("Q")]}
    return {
        "plain asyncio.gather": lambda: plain_moa(proposers, aggregator, "Q", layers),
        "bare graph, join nodes": lambda: joined.ainvoke(state),
        "bare graph, no joins": lambda: direct.ainvoke(state),
        "MoAChatModel.graph.ainvoke": lambda: moa.graph.ainvoke(state),
        "MoAChatModel.ainvoke": lambda: moa.ainvoke("Q"),
        "MoAChatModel.invoke (sync)": lambda: asyncio.to_thread(moa.invoke, "Q"),
    }


async def side_by_side(n: int, layers: int, sleep: float, rounds: int, per_round: int) -> dict[str, float]:
    """Median milliseconds per request of every contender, measured in interleaved rounds."""
    ways = contenders(n, layers, sleep)
    times: dict[str, list[float]] = {name: [] for name in ways}
    for call in ways.values():
        await call()  # warm up
    for _ in range(rounds):
        for name, call in ways.items():
            for _ in range(per_round):
                started = time.perf_counter()
                await call()
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) * 1000 for name, t in times.items()}


async def profile(n: int, layers: int, calls: int) -> list[tuple[str, float]]:
    """Where ``MoAChatModel.ainvoke``'s time goes: own time per request by package (cProfile)."""
    call = contenders(n, layers, 0.0)["MoAChatModel.ainvoke"]
    await call()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        await call()
    profiler.disable()
    groups: dict[str, float] = {}
    for (path, _, _), (_, _, own, _, _) in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
        groups[_package(path)] = groups.get(_package(path), 0.0) + own
    return sorted(((k, v / calls * 1000) for k, v in groups.items()), key=lambda kv: -kv[1])


def _package(path: str) -> str:
    for package in ("langchain_moa", "langgraph", "langchain_core", "pydantic", "asyncio"):
        if f"/{package}/" in path:
            return package
    return "builtins (C)" if path == "~" else "other Python"
