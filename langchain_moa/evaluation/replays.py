"""The proposals a ``moa eval exact`` run journalled, aggregated again: every other strategy, staircase
and short-proposal replays, and the adaptive rules (``early_exit``, ``cascade``) as the graph would
decide, so that each is compared with MoA on the very same proposals (``--strategies``)."""

from __future__ import annotations

import functools
import random
import re
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.messages.ai import add_usage

from langchain_moa import aggregation
from langchain_moa.agreement import Judge
from langchain_moa.chat_models import MoAChatModel
from langchain_moa.errors import MoAConfigError
from langchain_moa.evaluation.runner import Journal, failures_path, run_items
from langchain_moa.options import STAIRCASE_LAYOUTS
from langchain_moa.staircase import replay

__all__ = ["check_strategies", "run_strategies"]


async def run_strategies(
    moa: MoAChatModel,
    questions: list[dict[str, Any]],
    records: list[dict[str, Any]],
    output: Path,
    strategies: list[str],
    *,
    num_proc: int = 4,
    show_progress: bool = True,
) -> list[dict[str, Any]]:
    """Aggregate each question's journalled proposals again with every other ``strategy``: only the
    aggregator runs, so the strategies are compared on the very same proposals. Resumable too.

    Besides the aggregation strategies, two fast paths replay the proposals: ``staircase=N`` aggregates
    them in staircase rounds of N words cut from the journalled text in the order they would arrive
    (``staircase.replay``; ``staircase=N:prefill`` or ``staircase=N:turns`` names the layout, else
    the MoA's ``staircase_layout``), and ``proposer_max_tokens=N`` synthesises their first N words (what a
    proposer limited to N tokens writes, counted in words; its proposal tokens are estimated in
    proportion)."""
    check_strategies(strategies)
    sampling = {
        k: v for k, v in (("temperature", moa.temperature), ("max_tokens", moa.max_tokens)) if v is not None
    }
    items = [(r, s) for r in records for s in strategies if r["moa"].get("final", r["moa"]["proposals"])]

    async def answer(item: tuple[dict[str, Any], str]) -> dict[str, Any]:
        record, strategy = item
        moa_record = record["moa"]
        references = [t for t in moa_record.get("final", [p["text"] for p in moa_record["proposals"]]) if t]
        conversation = [HumanMessage(questions[record["index"]]["question"])]
        proposal_tokens = sum(p["tokens"] for p in moa_record["proposals"])
        fast_path, n, layout = _replay_spec(strategy)
        started = time.perf_counter()
        if fast_path == "adaptive":
            return {"key": f"{record['id']}|{strategy}"} | await _adaptive(
                moa, conversation, moa_record, strategy, sampling
            )
        if fast_path == "staircase":
            text, note, chunks = await replay(
                moa.aggregator_model, conversation, references, chunk=n, prompt=moa.aggregator_prompt,
                layout=layout or moa.staircase_layout, **sampling,
            )  # fmt: skip
            usage = functools.reduce(add_usage, [c.usage_metadata for c in chunks if c.usage_metadata], None)
        else:
            if fast_path == "proposer_max_tokens":
                words = [re.findall(r"\s*\S+", r) for r in references]
                kept = sum(min(len(w), n) for w in words) / max(1, sum(len(w) for w in words))
                references = ["".join(w[:n]).strip() for w in words]
                proposal_tokens = round(proposal_tokens * kept)
            text, note, usage = await aggregation.aggregate_once(
                moa.aggregator_model,
                conversation,
                references,
                strategy if fast_path is None else "synthesize",
                prompt=moa.aggregator_prompt,
                rng=random.Random(f"{moa.seed}-{record['id']}"),
                voters=len(moa_record.get("final", moa_record["proposals"])),
                models=[p["model"] for p in moa_record["proposals"]] if moa.layers == 2 else (),
                **sampling,
            )
        return {
            "key": f"{record['id']}|{strategy}",
            "text": text,
            "note": note,
            "tokens": proposal_tokens + ((usage or {}).get("total_tokens", 0)),
            "seconds": max((p["seconds"] for p in moa_record["proposals"]), default=0.0)
            + time.perf_counter()
            - started,
        }

    done = await run_items(
        items,
        lambda item: f"{item[0]['id']}|{item[1]}",
        answer,
        Journal(output.with_name(output.name + ".strategies.jsonl"), key="key"),
        failures=failures_path(output.with_name(output.name + ".strategies")),
        num_proc=num_proc,
        description="other aggregations",
        show_progress=show_progress,
    )
    for record in records:
        record["strategies"] = {
            s: done[f"{record['id']}|{s}"] for s in strategies if f"{record['id']}|{s}" in done
        }
    return records


async def _adaptive(
    moa: MoAChatModel,
    conversation: list[HumanMessage],
    moa_record: dict[str, Any],
    spec: str,
    sampling: dict[str, Any],
) -> dict[str, Any]:
    """``early_exit=S``, ``cascade=K`` or ``cascade=K+early_exit=S`` (and ``+<strategy>``) replayed on
    the journalled proposals of a 2-layer MoA, as the graph would decide: the first K proposals (all
    without ``cascade``), the rest only when those disagree; the agreeing proposal as the answer when S
    of those that ran agree. Where every proposer ran and none agreed, the run is the standard MoA's,
    whose journalled answer is the answer (no model runs again), or, with a strategy named, that
    strategy's aggregation of them; a cascade whose first proposers agreed without an exit aggregates
    their proposals alone."""
    parts = spec.split("+")
    strategy = next((p for p in parts if p in aggregation.STRATEGIES), None)
    rules = dict(part.split("=") for part in parts if part != strategy)
    share = float(rules["early_exit"]) if "early_exit" in rules else None
    first = int(rules.get("cascade", 0)) or None
    journalled = moa_record["proposals"]
    proposals = [
        {"node": str(i), "layer": 1, "index": i, "model": p["model"], "content": p["text"], "error": None,
         "usage": None, "latency_s": p["seconds"], "cut": False}
        for i, p in enumerate(journalled, start=1)
    ]  # fmt: skip
    judge = Judge()
    ran = proposals
    if first is not None and await judge.consensus(proposals[:first], share or 1.0) is not None:
        ran = proposals[:first]
    spent = sum(p["tokens"] for p in journalled[: len(ran)])
    waited = [p["seconds"] for p in journalled]  # a cascade's later proposers start after its first
    seconds = (
        max(waited[:first]) + max(waited[first:], default=0.0) * (ran is proposals) if first else max(waited)
    )
    note: dict[str, Any] = {"ran": len(ran), "of": len(proposals)}
    if share is not None and (agreed := await judge.consensus(ran, share)) is not None:
        text = ran[agreed.chosen - 1]["content"] or ""
        return {"text": text, "note": note | {"exit": agreed.record()}, "tokens": spent, "seconds": seconds}
    if ran is proposals and strategy is None:  # the standard MoA's run: its journalled answer
        aggregator_tokens = moa_record["tokens"] - sum(p["tokens"] for p in journalled)
        return {"text": moa_record["text"], "note": note, "tokens": spent + aggregator_tokens,
                "seconds": moa_record["seconds"]}  # fmt: skip
    started = time.perf_counter()
    text, chose, usage = await aggregation.aggregate_once(
        moa.aggregator_model, conversation, [p["content"] or "" for p in ran], strategy or "synthesize",
        prompt=moa.aggregator_prompt, rng=random.Random(0), models=[p["model"] for p in ran],
        voters=len(ran), **sampling,
    )  # fmt: skip
    note |= {"aggregation": chose} if strategy else {}
    seconds += time.perf_counter() - started
    return {
        "text": text,
        "note": note,
        "tokens": spent + (usage["total_tokens"] if usage else 0),
        "seconds": seconds,
    }


_FAST_PATHS = ("staircase", "proposer_max_tokens")
_ADAPTIVE = re.compile(
    r"(early_exit=(0\.\d+|1(\.0+)?)|cascade=[1-9]\d*(\+early_exit=(0\.\d+|1(\.0+)?))?)"
    rf"(\+({'|'.join(aggregation.STRATEGIES)}))?"
)
"""``early_exit=S``, ``cascade=K``, ``cascade=K+early_exit=S``, each with ``+<strategy>`` or not."""


def check_strategies(specs: list[str]) -> None:
    """Refuse an unknown strategy or fast path (``MoAConfigError`` naming it and what exists)."""
    for spec in specs:
        _replay_spec(spec)


def _replay_spec(spec: str) -> tuple[str | None, int, str | None]:
    """``("staircase", 8, "prefill")`` for ``"staircase=8:prefill"``, ``("staircase", 8, None)`` for
    ``"staircase=8"``, ``(None, 0, None)`` for a strategy's name."""
    if spec in aggregation.STRATEGIES:
        return None, 0, None
    if _ADAPTIVE.fullmatch(spec) and all(
        float(p.split("=")[1]) > 0.5 for p in spec.split("+") if "exit" in p
    ):
        return "adaptive", 0, None
    name, _, size = spec.partition("=")
    size, _, layout = size.partition(":")
    if (
        name in _FAST_PATHS
        and size.isdigit()
        and int(size) >= 1
        and (not layout or (name == "staircase" and layout in STAIRCASE_LAYOUTS))
    ):
        return name, int(size), layout or None
    adaptive = ["early_exit=S", "cascade=K", "cascade=K+early_exit=S", "<any of these>+<strategy>"]
    known = [*aggregation.STRATEGIES, *(f"{p}=N" for p in _FAST_PATHS), "staircase=N:<layout>", *adaptive]
    msg = f"unknown aggregation {spec!r}; strategies: {', '.join(known)}"
    raise MoAConfigError(msg)
