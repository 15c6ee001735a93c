"""Tables for benchmarks/QUALITY.md from `moa eval exact` outputs (their journals hold every answer).

    python benchmarks/quality.py NAME=PATH [NAME=PATH ...]   # prints one Markdown table per run

Each PATH is the `-o` file of a `moa eval exact ... --strategies ...` run; the strategies' answers are
read from its `.strategies.jsonl` journal beside it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from langchain_moa.evaluation.exact import baselines, score_exact


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
    records = _records(path)
    scores = score_exact(records)
    best, vote = baselines(scores)
    lines = [
        "| configuration | accuracy (95% interval) | correct | vs best proposer | vs majority vote | tokens/question | seconds/question |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in scores:
        low, high = s.interval
        lines.append(
            f"| {s.name} | {s.accuracy:.1%} ({low:.1%}-{high:.1%}) | {s.correct}/{s.total} | "
            f"{s.against(best) if best else '-'} | {s.against(vote) if vote else '-'} | "
            f"{s.tokens / max(s.total, 1):.0f} | {s.seconds / max(s.total, 1):.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    for argument in sys.argv[1:]:
        name, _, path = argument.partition("=")
        print(f"### {name}\n\n{table(Path(path))}\n")


if __name__ == "__main__":
    main()
