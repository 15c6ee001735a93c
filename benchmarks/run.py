"""Speed of langchain-moa, measured side by side in one run; writes benchmarks/RESULTS.md.

    python benchmarks/run.py            # the full run (a few minutes; --local adds the local model)
    python benchmarks/run.py --quick    # a tiny run that only proves the script works

Models are simulated: async sleeps drawn from a fixed-seed log-normal distribution, so MoA, the critical
path and a plain ``asyncio.gather`` MoA (as the paper's code does it) see the very same latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field

from langchain_moa import AGGREGATOR_PROMPT, MoAChatModel
from langchain_moa.prompts import inject_references

sys.path.insert(0, str(Path(__file__).parent))
import engine
import server

RESULTS = Path(__file__).with_name("RESULTS.md")


class SimulatedModel(BaseChatModel):
    """Answers after the next latency of its schedule; streams its answer in ``tokens`` chunks."""

    latencies: list[float]
    tokens: int = 8
    token_delay: float = 0.0
    first_token_at: list[float] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "simulated"

    def _next(self) -> float:
        return self.latencies.pop(0) if self.latencies else 0.0

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        raise NotImplementedError("the benchmark is async")

    async def _agenerate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        await asyncio.sleep(self._next())
        message = AIMessage(" ".join(["word"] * self.tokens), usage_metadata=_usage(self.tokens))
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _astream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        await asyncio.sleep(self._next())
        for i in range(self.tokens):
            if i == 0:
                self.first_token_at.append(time.perf_counter())
            elif self.token_delay:
                await asyncio.sleep(self.token_delay)
            yield ChatGenerationChunk(message=AIMessageChunk(content=("" if i == 0 else " ") + "word"))
        yield ChatGenerationChunk(message=AIMessageChunk(content="", usage_metadata=_usage(self.tokens)))


def _usage(tokens: int) -> Any:
    return {"input_tokens": 10, "output_tokens": tokens, "total_tokens": 10 + tokens}


@dataclass
class Trial:
    """The latencies of one MoA call: ``proposers[layer][i]`` and the aggregator's."""

    proposers: list[list[float]]
    aggregator: float

    @property
    def critical_path(self) -> float:
        return sum(max(layer) for layer in self.proposers) + self.aggregator

    def models(self, tokens: int = 8) -> tuple[list[SimulatedModel], SimulatedModel]:
        proposers = [SimulatedModel(latencies=[]) for _ in self.proposers[0]]
        aggregator = SimulatedModel(latencies=[], tokens=tokens, first_token_at=[])
        self.load(proposers, aggregator)
        return proposers, aggregator

    def load(self, proposers: Sequence[SimulatedModel], aggregator: SimulatedModel) -> None:
        """Give each model its latencies for one MoA call (proposer i: one per layer)."""
        for i, proposer in enumerate(proposers):
            proposer.latencies = [layer[i] for layer in self.proposers]
        aggregator.latencies = [self.aggregator]


def draw_trial(rng: random.Random, layers: int, n: int, median: float = 0.2, sigma: float = 0.5) -> Trial:
    def draw() -> float:
        return median * rng.lognormvariate(0, sigma)

    return Trial([[draw() for _ in range(n)] for _ in range(layers - 1)], draw())


async def paper_moa(
    proposers: Sequence[BaseChatModel], aggregator: BaseChatModel, question: str, layers: int
) -> str:
    """MoA the way the reference implementation does it: gather each layer, then aggregate."""
    messages: list[BaseMessage] = [HumanMessage(question)]
    references: list[str] = []
    for _ in range(layers - 1):
        answers = await asyncio.gather(
            *(p.ainvoke(inject_references(messages, AGGREGATOR_PROMPT, references)) for p in proposers)
        )
        references = [a.text for a in answers]
    chunks = [
        c.text async for c in aggregator.astream(inject_references(messages, AGGREGATOR_PROMPT, references))
    ]
    return "".join(chunks)


async def timed(coroutine: Any) -> float:
    started = time.perf_counter()
    await coroutine
    return time.perf_counter() - started


# -- 1. wall time against the critical path and the plain-asyncio baseline -----------------------


async def wall_time(
    layer_counts: Sequence[int], proposer_counts: Sequence[int], trials: int
) -> list[list[str]]:
    rows = []
    for layers in layer_counts:
        for n in proposer_counts:
            rng = random.Random(f"{layers}-{n}")
            proposers, aggregator = Trial([[0.0] * n] * (layers - 1), 0.0).models()
            moa = MoAChatModel(proposers=proposers, aggregator=aggregator, layers=layers)
            await moa.ainvoke("warm up")  # built and warmed once, as an application would
            moa_t, base_t, path_t = [], [], []
            for _ in range(trials):
                trial = draw_trial(rng, layers, n)
                trial.load(proposers, aggregator)
                moa_t.append(await timed(moa.ainvoke("Q")))
                trial.load(proposers, aggregator)
                base_t.append(await timed(paper_moa(proposers, aggregator, "Q", layers)))
                path_t.append(trial.critical_path)
            moa_ms, base_ms, path_ms = (statistics.mean(x) * 1000 for x in (moa_t, base_t, path_t))
            rows.append([str(layers), str(n), f"{path_ms:.0f}", f"{base_ms:.0f}", f"{moa_ms:.0f}",
                         f"{(moa_ms / path_ms - 1) * 100:+.1f}%", f"{(moa_ms / base_ms - 1) * 100:+.1f}%"])  # fmt: skip
            print(f"  wall time: {layers} layers, {n} proposers: MoA {moa_ms:.0f} ms, path {path_ms:.0f} ms")
    return rows


# -- 2. orchestration overhead per model call ------------------------------------------------------


async def overhead(calls: int) -> list[list[str]]:
    rows = []
    for layers, n in ((2, 4), (3, 4)):
        per_moa = n * (layers - 1) + 1
        proposers, aggregator = Trial([[0.0] * n] * (layers - 1), 0.0).models()
        moa = MoAChatModel(proposers=proposers, aggregator=aggregator, layers=layers)
        await moa.ainvoke("warm up")
        instant = Trial([[0.0] * n] * (layers - 1), 0.0)
        moa_s = await timed(_repeat(moa.ainvoke, calls, "Q"))
        base_s = await timed(_repeat(lambda t=instant, k=layers: paper_moa(*t.models(), "Q", k), calls))
        moa_us, base_us = (x / calls / per_moa * 1e6 for x in (moa_s, base_s))
        rows.append([str(layers), str(n), f"{base_us:.0f}", f"{moa_us:.0f}", f"{moa_us - base_us:.0f}"])
        print(f"  overhead: {layers} layers x {n}: {moa_us - base_us:.0f} us per model call")
    return rows


async def _repeat(call: Any, times: int, *args: Any) -> None:
    for _ in range(times):
        await call(*args)


# -- 3. time to first token -----------------------------------------------------------------------


async def first_token(trials: int) -> list[list[str]]:
    rng, gaps = random.Random("ttft"), []
    for _ in range(trials):
        trial = draw_trial(rng, 2, 4)
        proposers, aggregator = trial.models(tokens=32)
        aggregator.token_delay = 0.005
        moa = MoAChatModel(proposers=proposers, aggregator=aggregator)
        async for chunk in moa.astream("Q"):
            if chunk.text:
                gaps.append(time.perf_counter() - aggregator.first_token_at[0])
                break
    gaps_ms = sorted(g * 1000 for g in gaps)
    print(f"  first token: median {statistics.median(gaps_ms):.2f} ms after the aggregator's")
    return [[f"{statistics.median(gaps_ms):.2f}", f"{gaps_ms[-1]:.2f}", str(trials)]]


# -- 4. many concurrent requests -----------------------------------------------------------------


async def concurrent(requests: int, concurrency: int, latency: float) -> list[list[str]]:
    def moa() -> MoAChatModel:
        proposers = [SimulatedModel(latencies=[latency] * requests) for _ in range(4)]
        return MoAChatModel(proposers=proposers, aggregator=SimulatedModel(latencies=[latency] * requests))

    inputs = [f"question {i}" for i in range(requests)]
    model = moa()
    started, cpu = time.perf_counter(), time.process_time()
    results = await model.abatch(inputs, config={"max_concurrency": concurrency})
    elapsed, cpu_ms = time.perf_counter() - started, (time.process_time() - cpu) / requests * 1000
    assert len(results) == requests and all(r.text for r in results)
    ideal = concurrency / (2 * latency)  # each request's critical path: one proposer layer + aggregator
    gc.collect()
    tracemalloc.start()
    await moa().abatch(inputs, config={"max_concurrency": concurrency})
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    throughput = requests / elapsed
    print(f"  {requests} requests: {throughput:.0f}/s of an ideal {ideal:.0f}/s, peak {peak / 2**20:.0f} MiB")
    return [[str(requests), str(concurrency), f"{ideal:.0f}", f"{throughput:.0f}", f"{throughput / ideal * 100:.0f}%",
             f"{cpu_ms:.1f}", f"{1000 / cpu_ms:.0f}", f"{peak / 2**20:.1f}"]]  # fmt: skip


# -- 5. tail latency: quorum against waiting for everyone ---------------------------------------


async def tail(trials: int) -> list[list[str]]:
    rows = []
    for quorum in (None, 3):
        rng, times = random.Random("tail"), []
        for _ in range(trials):
            fast = [[0.1 * rng.lognormvariate(0, 0.3) for _ in range(3)] for _ in range(1)]
            heavy = 0.1 * rng.paretovariate(1.2)  # heavy-tailed: usually quick, sometimes very slow
            trial = Trial([[*fast[0], heavy]], 0.1)
            proposers, aggregator = trial.models()
            moa = MoAChatModel(proposers=proposers, aggregator=aggregator, proposal_quorum=quorum)
            times.append(await timed(moa.ainvoke("Q")))
        times.sort()
        p50, p95 = times[len(times) // 2], times[int(len(times) * 0.95) - 1]
        rows.append(
            [str(quorum or "all 4"), f"{p50 * 1000:.0f}", f"{p95 * 1000:.0f}", f"{times[-1] * 1000:.0f}"]
        )
        print(f"  tail: quorum {quorum}: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")
    return rows


# -- 6. the local backend -----------------------------------------------------------------------


def local_speed(max_tokens: int) -> list[list[str]]:
    from langchain_moa.local import local_chat_model

    question = "Write a short paragraph about the history of bicycles."
    raw_model = local_chat_model("qwen2.5-coder-0.5b", temperature=0.7, max_tokens=max_tokens)
    raw_model.invoke("warm up")
    started = time.perf_counter()
    raw = raw_model.invoke(question)
    raw_s = time.perf_counter() - started
    moa = MoAChatModel.from_preset("local", max_tokens=max_tokens)
    started = time.perf_counter()
    answer = moa.invoke(question)
    moa_s = time.perf_counter() - started
    raw_tokens = raw.usage_metadata["output_tokens"]
    moa_tokens = answer.usage_metadata["output_tokens"]
    print(f"  local: raw {raw_tokens / raw_s:.1f} tok/s, MoA {moa_tokens / moa_s:.1f} tok/s")
    return [["one request to the server", str(raw_tokens), f"{raw_s:.1f}", f"{raw_tokens / raw_s:.1f}"],
            ["local MoA call (3 samples + aggregation)", str(moa_tokens), f"{moa_s:.1f}", f"{moa_tokens / moa_s:.1f}"]]  # fmt: skip


# -- 7. start-up time of the command -----------------------------------------------------------


def startup(repeats: int) -> list[list[str]]:
    """Median wall time of commands that call no model, next to a bare Python start."""
    moa = str(Path(sys.executable).with_name("moa"))
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "moa --version": [moa, "--version"],
        "moa --help": [moa, "--help"],
        "moa presets": [moa, "presets"],
        "moa graph --preset together": [moa, "graph", "--preset", "together"],
    }
    rows = []
    for name, command in commands.items():
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            subprocess.run(command, capture_output=True, check=True)
            times.append(time.perf_counter() - started)
        rows.append([f"`{name}`", f"{statistics.median(times) * 1000:.0f}"])
        print(f"  start-up: {name}: {statistics.median(times) * 1000:.0f} ms")
    return rows


# -- the report ---------------------------------------------------------------------------------


async def server_section(quick: bool) -> str:
    """`moa serve` side by side with a bare FastAPI echo of the same shape (``server.py``; needs wrk)."""
    heading = "## The server: `moa serve` against a bare FastAPI app of the same shape\n\n"
    if shutil.which("wrk") is None:
        return heading + "Not measured: wrk is not installed (`apt-get install wrk`)."
    results = server.load(seconds=2 if quick else 10, requests_for_memory=500 if quick else 20_000)
    drops = await server.drops(20 if quick else 200)
    rows = [[kind, str(clients), f"{level['rps']:.0f}", f"{level['p50_ms']:.1f}", f"{level['p95_ms']:.1f}",
             str(level["errors"] + level["non2xx"])]
            for kind, result in results.items() for clients, level in result["levels"].items()]  # fmt: skip
    memory = [[kind, f"{r['requests_served']:,}", f"{r['rss_before_mib']:.0f}", f"{r['rss_after_mib']:.0f}"]
              for kind, r in results.items()]  # fmt: skip
    return (heading + "One uvicorn worker each, driven by wrk (keep-alive, 10 s per level) with the same "
            "non-streamed chat request. `moa` is MoA on 2 scripted proposers and a scripted aggregator that "
            "answer at once, so what is measured is the server and the engine: the strict request model, "
            "the registry, the MoA graph run (3 model calls), the answer's JSON. `echo` reads the same body "
            "and returns a completion of the same shape.\n\n"
            + table(["app", "clients", "requests/s", "p50 ms", "p95 ms", "errors"], rows)
            + "\n\nMemory (resident set) of each server before the load and after it:\n\n"
            + table(["app", "requests served", "RSS before MiB", "RSS after MiB"], memory)
            + f"\n\n{drops['clients']} clients leaving a streamed answer a few tokens in (a scripted "
            f"aggregator of 400 tokens, 20 ms apart): {drops['calls_started']} model calls started, "
            f"{drops['cancelled']} cancelled, **{drops['still_running']} still running** afterwards.")  # fmt: skip


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    packages = ", ".join(f"{p} {version(p)}" for p in ("langchain-core", "langgraph", "langchain-moa"))
    return f"{platform.machine()}, {cores} cores, {platform.system()} {platform.release()}; Python {platform.python_version()}; {packages}"


async def measure(args: argparse.Namespace) -> str:
    quick = args.quick
    sections = [f"# Benchmarks\n\nMeasured {time.strftime('%Y-%m-%d')} on {machine()}.\n"
                f"Reproduce with `python benchmarks/run.py{' --local' if args.local else ''}`"
                f"{' (this was a --quick run: too small to read anything from)' if quick else ''}. "
                "Past one process (`moa serve --workers`, the Agent Server on Postgres and Redis, a killed "
                "worker): [SCALE.md](SCALE.md), from `benchmarks/scale.py`.\n"]  # fmt: skip
    print("engine side by side ...")
    n, layers = 6, 3
    instant = await engine.side_by_side(
        n, layers, 0.0, rounds=2 if quick else 10, per_round=2 if quick else 30
    )
    slow = await engine.side_by_side(n, layers, 0.1, rounds=1 if quick else 3, per_round=1 if quick else 4)
    path_ms = 100.0 * layers  # two proposer layers and the aggregator, 100 ms each
    bare = instant["bare graph, join nodes"]
    rows = [[name, f"{instant[name]:.2f}", f"{instant[name] / bare:.2f}x", f"{slow[name]:.1f}",
             f"{slow[name] / path_ms:.3f}x"] for name in instant]  # fmt: skip
    breakdown = await engine.profile(n, layers, 10 if quick else 200)
    total = sum(ms for _, ms in breakdown)
    profile_rows = [[package, f"{ms:.2f}", f"{ms / total:.0%}"] for package, ms in breakdown]
    sections.append(f"## The engine side by side\n\n{n} proposers, {layers} layers ({n * (layers - 1) + 1} model "
                    "calls) on the same scripted models, measured in interleaved rounds in this one run: median "
                    "ms per request with instant models (and against the bare graph with a join node per layer, "
                    "the 0.1 shape), and with 100 ms models against the critical path (300 ms). Targets: "
                    "`MoAChatModel.ainvoke` at most 1.1x the bare graph; within 5% of the critical path.\n\n"
                    + table(["", "instant ms", "vs bare graph", "100 ms models: ms", "vs critical path"], rows)
                    + "\n\nWhere `MoAChatModel.ainvoke`'s time goes with instant models (cProfile, own time by "
                    "package, per request; profiling inflates every number, the shares are what to read):\n\n"
                    + table(["package", "ms/request", "share"], profile_rows)
                    + "\n\nWhat made it cheaper than 0.1: one superstep per layer (no join nodes: each proposer "
                    "of a layer feeds the next layer's, and those check `min_proposals`); nodes that LangGraph "
                    "does not trace twice (`trace=False`: the node run is traced already); no callback manager "
                    "for the graph when no handler would see the child runs; one custom stream mode instead of "
                    "two; no per-call wrappers when no timeout, quorum or bound is set; sync calls driving the "
                    "same async core on one background loop instead of threads per call."
                    "\n\nWith 100 ms models the 5% target is not met, and the rows say why: the same graph written directly on LangGraph (no events, checks or metadata) is itself above 5% on this machine, and MoAChatModel is within about one percent of it; what is left is LangGraph's own work per superstep (one per layer) and LangChain's per-call setup, which delays the start of each layer's last call. Plain asyncio, with no graph at all, stays under 5%.")  # fmt: skip
    print("wall time ...")
    rows = await wall_time((2, 3) if quick else (2, 3, 4), (2,) if quick else (2, 4, 8), 1 if quick else 5)
    sections.append("## Wall time against the critical path and a plain asyncio MoA\n\nSimulated latencies "
                    "(log-normal, median 200 ms); mean of the trials. The critical path is the sum over layers "
                    "of the slowest proposer, plus the aggregator. Target: within 5% of both.\n\n"
                    + table(["layers", "proposers", "critical path ms", "asyncio.gather MoA ms", "MoAChatModel ms",
                             "vs critical path", "vs asyncio"], rows))  # fmt: skip
    print("overhead ...")
    rows = await overhead(5 if quick else 200)
    sections.append("## Orchestration overhead per model call\n\nInstant models; microseconds per model call, "
                    "the plain asyncio MoA against MoAChatModel (a LangGraph run with callbacks, usage sums and "
                    "metadata). Target: low milliseconds at most.\n\n"
                    + table(["layers", "proposers", "asyncio.gather µs/call", "MoAChatModel µs/call", "overhead µs/call"], rows))  # fmt: skip
    print("first token ...")
    rows = await first_token(2 if quick else 20)
    sections.append("## Time to first streamed token\n\nFrom the aggregator yielding its first token to "
                    "`MoAChatModel.astream` yielding it. Target: a few milliseconds.\n\n"
                    + table(["median ms", "max ms", "trials"], rows))  # fmt: skip
    print("concurrent requests ...")
    latency = 0.05 if quick else 10.0
    rows = await concurrent(50 if quick else 1000, 10 if quick else 1000, latency)
    sections.append(f"## Many concurrent requests\n\n`abatch` of N requests with `max_concurrency`; 4 proposers "
                    f"and an aggregator of {latency:g} s each; ideal throughput = concurrency / critical path. "
                    "Peak memory is Python's allocations during the batch (tracemalloc). Target: 80% of ideal.\n\n"
                    + table(["requests", "max_concurrency", "ideal req/s", "req/s", "of ideal", "CPU ms/request",
                             "CPU-bound req/s", "peak MiB"], rows)
                    + "\n\nWhere this falls short of the target, the CPU column says why: each MoA request costs "
                    "that much Python CPU time (LangGraph supersteps, LangChain callbacks and message objects "
                    "for 5 model calls), all on the one core an event loop uses, so one process serves at most "
                    "the CPU-bound rate whatever the concurrency, and 1,000 requests started at once queue for "
                    "the CPU behind each other. More throughput takes more processes (LangGraph Server runs "
                    "several workers).")  # fmt: skip
    print("tail latency ...")
    rows = await tail(5 if quick else 60)
    sections.append("## Tail latency with a heavy-tailed proposer\n\n4 proposers, 2 layers: three log-normal "
                    "(median 100 ms), one Pareto (alpha 1.2, from 100 ms); aggregator 100 ms. `proposal_quorum=3` "
                    "aggregates the first three answers and cancels the fourth.\n\n"
                    + table(["wait for", "p50 ms", "p95 ms", "max ms"], rows))  # fmt: skip
    print("start-up ...")
    rows = startup(1 if quick else 10)
    sections.append("## Start-up time of the command\n\nMedian wall time of commands that call no model "
                    "(the engine is imported only when a command needs it), next to a bare Python start. "
                    "Target: well under a second.\n\n" + table(["command", "median ms"], rows))  # fmt: skip
    print("the server ...")
    sections.append(await server_section(quick))
    if args.local:
        print("local backend ...")
        rows = local_speed(32 if quick else 200)
        sections.append("## The local backend\n\nQwen2.5-Coder-0.5B on the embedded llama.cpp server: output "
                        "tokens per second of one request, and of a whole local MoA call (all its output tokens "
                        "over its wall time; the server batches the parallel samples).\n\n"
                        + table(["", "output tokens", "seconds", "tokens/s"], rows))  # fmt: skip
    return "\n\n".join(sections) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a tiny run that only proves the script works")
    p.add_argument("--local", action="store_true", help="also measure the embedded local model")
    p.add_argument(
        "--output",
        type=Path,
        help="where to write the Markdown report (default: RESULTS.md; "
        "a --quick run prints it instead, never overwriting the published results)",
    )
    args = p.parse_args()
    report = asyncio.run(measure(args))
    output = args.output or (None if args.quick else RESULTS)
    if output is None:
        print(report)
        return
    output.write_text(report)
    print(f"wrote {output}")


if __name__ == "__main__":
    sys.exit(main())
