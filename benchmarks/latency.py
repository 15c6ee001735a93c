"""Latency as people who serve LLMs measure it: time to first token (TTFT), inter-token latency (ITL)
and end-to-end time, p50 and p95, at 1 and 16 concurrent users, with ``servebench`` (an established
load tool for OpenAI-compatible endpoints) driving MoA's OpenAI-compatible server.

    pip install -e ".[bench,local]"
    python benchmarks/latency.py simulated   # servebench's simulated provider behind every model
    python benchmarks/latency.py adaptive    # early_exit and cascade, on requests that agree and that do not
    python benchmarks/latency.py local       # moa serve --preset local, with and without staircase
    python benchmarks/latency.py chart       # benchmarks/latency.png from both result files
    python benchmarks/latency.py report      # the tables of LATENCY.md

``simulated``: ``servebench mock-server`` streams tokens with a set TTFT and inter-token time and
writes exactly ``max_tokens`` tokens. Each configuration is a MoA of 4 proposers and an aggregator,
all ``ChatOpenAI(streaming=True)`` on that provider, served by ``moa serve``'s app in a process of
its own; servebench then runs against it, one configuration after another, in one run.

``adaptive``: the same provider and MoA, where each proposer's answer begins with a stated answer
("Answer: B."): the same one for every proposer on the requests that agree, a different one for each
proposer on those that do not (the provider's timing and token counts are untouched). Each
configuration runs on both sets of requests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from server import free_port, wait_listening

HERE = Path(__file__).parent
PROMPTS = [
    "Why is the sky blue?",
    "List the numbers from 1 to 10.",
    "Explain what a hash table is.",
    "Give three tips for writing clear emails.",
    "What causes the seasons on Earth?",
    "Summarise the plot of Romeo and Juliet.",
]

# name -> (layers, MoAOptions fields). Proposals are 300 tokens unless the configuration says otherwise.
SIMULATED: dict[str, tuple[int, dict[str, Any]]] = {
    "MoA synthesize": (2, {}),
    "MoA proposal_quorum=3": (2, {"proposal_quorum": 3}),
    "MoA aggregation=majority": (2, {"aggregation": "majority"}),
    "MoA staircase=8": (2, {"staircase": 8}),
    "MoA staircase=32": (2, {"staircase": 32}),
    "MoA proposer_max_tokens=100": (2, {"proposer_max_tokens": 100}),
    "3-layer MoA synthesize": (3, {}),
    "3-layer MoA staircase=8": (3, {"staircase": 8}),
    "3-layer MoA staircase=32": (3, {"staircase": 32}),
}


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _summary(run: dict[str, Any]) -> dict[str, Any]:
    """p50/p95 of TTFT, ITL and end-to-end per concurrency level, from servebench's per-request data."""
    levels = {}
    for level in run["levels"]:
        ok = [r for r in level["requests"] if r.get("ok")]
        ttft = [r["ttft"] for r in ok]
        e2e = [r["e2e"] for r in ok]
        itl = [b - a for r in ok for a, b in zip(r["chunk_times"], r["chunk_times"][1:], strict=False)]
        levels[str(int(level["value"]))] = {
            "requests": len(level["requests"]),
            "failed": len(level["requests"]) - len(ok),
            **{f"ttft_p{q}": _percentile(ttft, q) for q in (50, 95)},
            **{f"itl_p{q}": _percentile(itl, q) for q in (50, 95)},
            **{f"e2e_p{q}": _percentile(e2e, q) for q in (50, 95)},
        }
    return levels


def _levels(url: str, model: str, *, users: list[int], requests: int, output_len: int) -> dict[str, Any]:
    """Each concurrency level in a run of its own: ``requests`` with one user, and ``max(requests,
    users)`` with more, so that every user has a request."""
    levels = {}
    for n in users:
        run = _servebench(url, model, concurrency=str(n), requests=max(requests, n), output_len=output_len)
        levels.update(_summary(run))
    return levels


def _servebench(
    url: str, model: str, *, concurrency: str, requests: int, output_len: int, prefix: str = ""
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        prompts = Path(tmp, "prompts.jsonl")
        prompts.write_text("".join(json.dumps({"prompt": prefix + p}) + "\n" for p in PROMPTS))
        out = Path(tmp, "run.json")
        command = [
            str(Path(sys.executable).with_name("servebench")), "run", "--url", url, "--model", model,
            "--concurrency", concurrency, "--num-requests", str(requests), "--prompts", str(prompts),
            "--output-len", str(output_len), "--no-ignore-eos", "--warmup", "1", "--seed", "7",
            "--no-gpu", "--timeout", "600", "--out", str(out),
        ]  # fmt: skip
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


ADAPTIVE: dict[str, dict[str, Any]] = {
    "MoA synthesize": {},
    "MoA early_exit=0.67": {"early_exit": 0.67},
    "MoA cascade=2": {"cascade": 2},
    "MoA cascade=2+early_exit=0.67": {"cascade": 2, "early_exit": 0.67},
}
AGREE = "[the proposers agree] "
"""Marks a request whose simulated proposers all state the same answer."""


def serve_simulated(mock: str, port: int, layers: int, options: dict[str, Any]) -> None:
    """One MoA configuration on the simulated provider, served by ``moa serve``'s app."""
    import uvicorn
    from langchain_openai import ChatOpenAI

    from langchain_moa import MoAChatModel
    from langchain_moa.server.app import create_app
    from langchain_moa.server.registry import ModelRegistry

    class SimulatedModel(ChatOpenAI):
        # The simulated provider reads the older ``max_tokens`` field, which ChatOpenAI now sends as
        # ``max_completion_tokens``.
        def _get_request_payload(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            payload = super()._get_request_payload(*args, **kwargs)
            if "max_completion_tokens" in payload:
                payload["max_tokens"] = payload.pop("max_completion_tokens")
            return payload

    class StatingModel(SimulatedModel):
        """A simulated proposer whose answer starts by stating one: the same as the others' on a request
        marked ``AGREE``, its own otherwise."""

        letter: str = "A"

        async def _astream(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
            stated = f"Answer: {'B' if AGREE in messages[-1].text else self.letter}. "
            async for chunk in super()._astream(messages, *args, **kwargs):
                if stated and chunk.text:
                    chunk.message.content, stated = stated + chunk.text, ""
                yield chunk

    def model(name: str, letter: str | None = None) -> ChatOpenAI:
        kind = SimulatedModel if letter is None else StatingModel
        extra = {} if letter is None else {"letter": letter}
        return kind(model=name, base_url=mock, api_key="unused", streaming=True, stream_usage=True,
                    max_retries=0, **extra)  # fmt: skip

    stating = options.pop("stating", False)
    moa = MoAChatModel(
        proposers=[model(f"proposer-{i}", "ACDE"[i - 1] if stating else None) for i in range(1, 5)],
        aggregator=model("aggregator"),
        layers=layers,
        **{"proposer_max_tokens": 300, **options},
    )
    app = create_app(ModelRegistry({"moa": lambda: moa}))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _simulated_provider(args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str]:
    """servebench's simulated provider, listening: its process and its base URL."""
    port = free_port()
    mock = subprocess.Popen(
        [str(Path(sys.executable).with_name("servebench")), "mock-server", "--host", "127.0.0.1", "--port", str(port),
         "--ttft-ms", str(args.ttft_ms), "--itl-ms", str(args.itl_ms)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_listening(port, mock, timeout=600)
    return mock, f"http://127.0.0.1:{port}/v1"


@contextlib.contextmanager
def _served(url: str, layers: int, options: dict[str, Any]) -> Iterator[str]:
    """One MoA configuration on the simulated provider at ``url``, served in a process of its own: its
    base URL while it runs."""
    port = free_port()
    spec = json.dumps({"layers": layers, "options": options})
    server = subprocess.Popen([sys.executable, __file__, "serve-simulated", url, str(port), spec],
                              stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_listening(port, server, timeout=600)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        _stop(server)


def _results(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "provider": {"ttft_ms": args.ttft_ms, "itl_ms": args.itl_ms, "proposal_tokens": 300},
        "answer_tokens": args.output_len,
        "configurations": {},
    }


def simulated(args: argparse.Namespace) -> None:
    mock, url = _simulated_provider(args)
    results = _results(args)
    try:
        results["configurations"]["one model alone"] = _levels(
            url, "one-model", users=[1, 16], requests=args.requests, output_len=args.output_len
        )
        print("one model alone", results["configurations"]["one model alone"], flush=True)
        for name, (layers, options) in SIMULATED.items():
            with _served(url, layers, options) as moa:
                levels = _levels(
                    moa, "moa", users=[1, 16], requests=args.requests, output_len=args.output_len
                )
            results["configurations"][name] = {"layers": layers, "options": options, **levels}
            print(name, results["configurations"][name], flush=True)
    finally:
        _stop(mock)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


def adaptive(args: argparse.Namespace) -> None:
    """``early_exit`` and ``cascade`` against the standard MoA, on requests that agree and that do not."""
    mock, url = _simulated_provider(args)
    results = _results(args)
    try:
        for name, options in ADAPTIVE.items():
            with _served(url, 2, {**options, "stating": True}) as moa:
                for requests, prefix in (("agreeing", AGREE), ("disagreeing", "")):
                    run = _servebench(moa, "moa", concurrency="1", requests=args.requests,
                                      output_len=args.output_len, prefix=prefix)  # fmt: skip
                    results["configurations"][f"{name}, {requests}"] = {"options": options, **_summary(run)}
                    print(name, requests, results["configurations"][f"{name}, {requests}"]["1"], flush=True)
    finally:
        _stop(mock)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


def local(args: argparse.Namespace) -> None:
    """``moa serve --preset local`` as a user starts it, with and without staircase in both layouts
    (one at a time: two llama.cpp servers on two cores would slow each other down)."""
    results: dict[str, Any] = {"answer_tokens": args.output_len, "configurations": {}}
    staircases = {
        f"MoA staircase={n} {layout}": ["--staircase", str(n), "--staircase-layout", layout]
        for n in args.staircase
        for layout in ("prefill", "turns")
    }
    for name, flags in {
        "one model (layers=1)": ["--layers", "1"],
        "MoA synthesize": [],
        **staircases,
    }.items():
        port = free_port()
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("moa")), "serve", "--preset", "local", "--port", str(port),
             "--name", "moa", *flags],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_listening(port, server, timeout=600)
            levels = _levels(f"http://127.0.0.1:{port}/v1", "moa", users=[1],
                             requests=args.requests, output_len=args.output_len)  # fmt: skip
        finally:
            _stop(server)
        results["configurations"][name] = levels
        print(name, results["configurations"][name], flush=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


def chart(args: argparse.Namespace) -> None:
    """Median TTFT against median end-to-end time, one point per configuration (one user)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = [("simulated provider (4 proposers)", HERE / "latency-simulated.json"),
             ("local preset (0.5B, 2 cores)", HERE / "latency-local.json")]  # fmt: skip
    figure, axes = plt.subplots(1, len(files), figsize=(13, 5.5))
    for axis, (title, path) in zip(axes, files, strict=True):
        configurations = json.loads(path.read_text())["configurations"]
        points: dict[tuple[float, float], list[str]] = {}  # configurations that measure alike share a label
        for name, result in configurations.items():
            level = result["1"]
            points.setdefault((round(level["e2e_p50"], 1), round(level["ttft_p50"], 1)), []).append(name)
        for (e2e, ttft), names in points.items():
            axis.scatter(e2e, ttft)
            axis.annotate(
                "\n".join(names), (e2e, ttft), fontsize=7, textcoords="offset points", xytext=(4, 3)
            )
        axis.set(title=title, xlabel="end-to-end time, median (s)", ylabel="time to first token, median (s)")
        axis.margins(x=0.2)  # room for the labels of the rightmost points
        axis.grid(alpha=0.3)
    figure.suptitle("Time to first token against end-to-end time (1 user, servebench)")
    figure.tight_layout()
    figure.savefig(HERE / "latency.png", dpi=110)


def report(args: argparse.Namespace) -> None:
    """The tables of LATENCY.md, from the result files (seconds; ITL in milliseconds)."""
    for title, path in (
        ("simulated", HERE / "latency-simulated.json"),
        ("adaptive", HERE / "latency-adaptive.json"),
        ("local", HERE / "latency-local.json"),
    ):
        if not path.exists():
            continue
        configurations = json.loads(path.read_text())["configurations"]
        users = sorted({u for r in configurations.values() for u in r if u.isdigit()}, key=int)
        print(f"\n### {title}\n")
        print("| configuration | users | TTFT p50 | TTFT p95 | ITL p50 (ms) | ITL p95 (ms) | end-to-end p50 | "
              "end-to-end p95 | requests (failed) |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|")
        for name, result in configurations.items():
            for u in users:
                if (level := result.get(u)) is None:
                    continue
                itl = [
                    f"{level[k] * 1000:.0f}" if level[k] is not None else "-" for k in ("itl_p50", "itl_p95")
                ]
                print(f"| {name} | {u} | {level['ttft_p50']:.2f} | {level['ttft_p95']:.2f} | "
                      f"{itl[0]} | {itl[1]} | {level['e2e_p50']:.2f} | "
                      f"{level['e2e_p95']:.2f} | {level['requests']} ({level['failed']}) |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sim = commands.add_parser("simulated")
    sim.add_argument("--ttft-ms", type=int, default=400)
    sim.add_argument("--itl-ms", type=int, default=25)
    sim.add_argument("--output-len", type=int, default=200, help="the answer's tokens (max_tokens)")
    sim.add_argument("--requests", type=int, default=6, help="requests with one user (16 users: 16)")
    sim.add_argument("--out", default=str(HERE / "latency-simulated.json"))
    loc = commands.add_parser("local")
    loc.add_argument("--output-len", type=int, default=128)
    loc.add_argument("--requests", type=int, default=6)
    loc.add_argument("--staircase", type=int, nargs="+", default=[8, 24])
    loc.add_argument("--out", default=str(HERE / "latency-local.json"))
    ada = commands.add_parser("adaptive")
    ada.add_argument("--ttft-ms", type=int, default=400)
    ada.add_argument("--itl-ms", type=int, default=25)
    ada.add_argument("--output-len", type=int, default=200, help="the answer's tokens (max_tokens)")
    ada.add_argument("--requests", type=int, default=6)
    ada.add_argument("--out", default=str(HERE / "latency-adaptive.json"))
    commands.add_parser("chart")
    commands.add_parser("report")
    serve = commands.add_parser("serve-simulated")
    serve.add_argument("mock")
    serve.add_argument("port", type=int)
    serve.add_argument("spec")
    args = parser.parse_args()
    if args.command == "serve-simulated":
        spec = json.loads(args.spec)
        serve_simulated(args.mock, args.port, spec["layers"], spec["options"])
    else:
        commands_ = {
            "simulated": simulated,
            "adaptive": adaptive,
            "local": local,
            "chart": chart,
            "report": report,
        }
        commands_[args.command](args)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
