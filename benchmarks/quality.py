"""Tables for benchmarks/QUALITY.md from `moa eval exact` outputs (their journals hold every answer).

    python benchmarks/quality.py NAME=PATH [NAME=PATH ...]   # prints one Markdown table per run

Each PATH is the `-o` file of a `moa eval exact ... --strategies ...` run; the strategies' answers are
read from its `.strategies.jsonl` journal beside it.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from langchain_moa.answers import final_answer
from langchain_moa.evaluation.exact import REPORT_HEADER, matches, report, score_exact


def _records(path: Path) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    strategies_file = path.with_name(path.name + ".strategies.jsonl")
    others = (
        [json.loads(line) for line in strategies_file.read_text().splitlines()]
        if strategies_file.exists()
        else []
    )
    by_key = {o["key"]: o for o in others}
    for record in records:
        record["strategies"] = {
            key.split("|", 1)[1]: value
            for key, value in by_key.items()
            if key.split("|", 1)[0] == str(record["id"])
        }
    return sorted(records, key=lambda r: r["index"])


def table(path: Path) -> str:
    lines = ["| " + " | ".join(REPORT_HEADER) + " |", "|---" * len(REPORT_HEADER) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in report(score_exact(_records(path)))]
    return "\n".join(lines)


def against_moa(path: Path) -> str:
    """Each other configuration against the standard MoA on the same questions: the difference in
    points and McNemar's exact p (the fast paths: does staircase, or a short proposal, cost accuracy?),
    and how many of its answers begin again (state their letter more than once)."""
    records = _records(path)
    scores = score_exact(records)
    moa = next(s for s in scores if s.name == "MoA")
    texts = {"MoA": [r["moa"]["text"] for r in records]}
    for record in records:
        for strategy, result in record["strategies"].items():
            texts.setdefault(f"MoA ({strategy})", []).append(result["text"])
    lines = ["| configuration | accuracy (95% interval) | correct | vs the standard MoA | tokens/question "
             "| answers that begin again |", "|---|---|---|---|---|---|"]  # fmt: skip
    for score in scores:
        if score.name.startswith("MoA"):
            low, high = score.interval
            again = sum(begins_again(t or "") for t in texts[score.name])
            lines.append(f"| {score.name} | {score.accuracy:.1%} ({low:.1%}-{high:.1%}) | {score.correct}/"
                         f"{score.total} | {score.against(moa)} | {score.tokens / max(score.total, 1):.0f} "
                         f"| {again} of {len(texts[score.name])} |")  # fmt: skip
    return "\n".join(lines)


REFERENCE_MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
"""Dollars per question are this Together model's list price (the Together preset's first proposer),
from genai-prices, applied to the tokens each configuration spent here: what the same token counts
would cost there, marked as such, not what a local run costs."""


def dollars_per_token() -> float:
    from langchain_together import ChatTogether

    from langchain_moa.costs import Pricer

    price = Pricer().price(ChatTogether(model=REFERENCE_MODEL, api_key="not-used"))
    assert price is not None and price.input == price.output  # one rate: usage split not needed
    return price.input / 1e6


def fired(path: Path) -> str:
    """How often each agreement rule fired (the answer came from agreeing proposals, or a cascade's
    later proposers were skipped), and how accurate the answers were when it fired and when it did not."""
    records = _records(path)
    rate = dollars_per_token()
    lines = ["| configuration | fired | accuracy when fired | accuracy otherwise | tokens/question "
             "| $/question at Together list price* |", "|---|---|---|---|---|---|"]  # fmt: skip
    moa_tokens = sum(r["moa"]["tokens"] for r in records) / max(len(records), 1)
    lines.append(f"| MoA | - | - | - | {moa_tokens:.0f} | {moa_tokens * rate:.6f} |")
    names = sorted({s for r in records for s in r["strategies"]})
    for name in names:
        results = [(r, r["strategies"][name]) for r in records if name in r["strategies"]]
        if not results or "ran" not in results[0][1]["note"]:
            continue
        hit = [(r, s) for r, s in results if "exit" in s["note"] or s["note"]["ran"] < s["note"]["of"]]
        miss = [(r, s) for r, s in results if (r, s) not in hit]

        def accuracy(cases: list[Any]) -> str:
            right = sum(matches(s["text"], r["answer"]) for r, s in cases)
            return f"{right}/{len(cases)} ({right / len(cases):.0%})" if cases else "-"

        tokens = sum(s["tokens"] for _, s in results) / len(results)
        lines.append(f"| MoA ({name}) | {len(hit)} of {len(results)} | {accuracy(hit)} | {accuracy(miss)} "
                     f"| {tokens:.0f} ({tokens / moa_tokens:.0%} of MoA's) | {tokens * rate:.6f} |")  # fmt: skip
    return "\n".join(lines)


def begins_again(text: str) -> bool:
    """Whether an answer states its letter more than once ("Answer: D ... Answer: D"): the aggregator
    began its answer again instead of continuing it."""
    return len(re.findall(r"\banswer\s*:\s*\(?[A-J]\b", text, re.IGNORECASE)) > 1


def sides(path: Path) -> str:
    """Whom each aggregation sides with when the proposals disagree: the proposal shown in each position,
    and another answer than a strict majority's (the position bias and vote-breaking that #12
    reported)."""
    records = _records(path)
    runs: dict[str, list[tuple[list[str], str]]] = {}  # strategy -> (answers in shown order, its answer)
    for record in records:
        moa = record["moa"]
        # What the aggregator was shown, as ``moa eval exact --strategies`` shows it (failed ones left out).
        shown = [final_answer(t) for t in moa.get("final", [p["text"] for p in moa["proposals"]]) if t]
        if len(set(shown)) < 2:
            continue
        runs.setdefault("MoA", []).append((shown, final_answer(moa["text"])))
        for strategy, result in record["strategies"].items():
            order = result["note"].get("order") or range(1, len(shown) + 1)
            runs.setdefault(strategy, []).append(
                ([shown[i - 1] for i in order], final_answer(result["text"]))
            )
    width = max((len(shown) for cases in runs.values() for shown, _ in cases), default=0)
    lines = [
        "| aggregation | questions with disagreeing proposals | "
        + " | ".join(f"same answer as position {i + 1}" for i in range(width))
        + " | another answer than a strict majority's |",
        "|---|---|" + "---|" * width + "---|",
    ]
    for strategy, cases in runs.items():
        positions = [
            sum(len(shown) > i and answer == shown[i] for shown, answer in cases) for i in range(width)
        ]
        overruled = [(shown, answer) for shown, answer in cases if _majority(shown)]
        against = sum(answer != _majority(shown) for shown, answer in overruled)
        lines.append(
            f"| {strategy} | {len(cases)} | "
            + " | ".join(str(n) for n in positions)
            + f" | {against} of {len(overruled)} |"
        )
    return "\n".join(lines)


def _majority(answers: list[str]) -> str | None:
    (top, count), *_ = Counter(answers).most_common(1)
    return top if count * 2 > len(answers) else None


def main() -> None:
    for argument in sys.argv[1:]:
        name, _, path = argument.partition("=")
        print(f"### {name}\n\n{table(Path(path))}\n\n{against_moa(Path(path))}\n\n{fired(Path(path))}\n\n"
              f"{sides(Path(path))}\n")  # fmt: skip


if __name__ == "__main__":
    main()
