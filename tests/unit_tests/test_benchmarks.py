"""The benchmark reports' tables read what the runs write (the script itself: test_benchmark_script.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


def test_the_quality_tables_read_an_exact_run_and_its_strategies(tmp_path: Path) -> None:
    import json

    sys.path.insert(0, str(SCRIPT.parent))
    import quality

    proposals = [{"model": "m", "text": t, "tokens": 5, "seconds": 1.0} for t in ("A", "B", "B")]
    record = {"id": "q1", "index": 0, "answer": "B", "moa": {"text": "A", "tokens": 20, "seconds": 2.0,
              "proposals": proposals, "final": ["A", "B", "B"]}}  # fmt: skip
    output = tmp_path / "run.jsonl"
    output.write_text(json.dumps(record) + "\n")
    strategies = [
        {"key": "q1|tally", "text": "B", "note": {}, "tokens": 22, "seconds": 2.5},
        # shown in the order 3, 1, 2: "B", "A", "B"
        {"key": "q1|shuffle", "text": "A", "note": {"order": [3, 1, 2]}, "tokens": 22, "seconds": 2.5},
    ]
    (tmp_path / "run.jsonl.strategies.jsonl").write_text("".join(json.dumps(s) + "\n" for s in strategies))
    table = quality.table(output)
    assert "| MoA | 0.0% (0.0%-79.3%) | 0/1 |" in table
    assert "| MoA (tally) | 100.0% (20.7%-100.0%) | 1/1 |" in table
    assert "| majority vote of the proposals | 100.0%" in table
    sides = quality.sides(output)
    assert "| MoA | 1 | 1 | 0 | 0 | 1 of 1 |" in sides  # sided with position 1, against the majority
    assert "| tally | 1 | 0 | 1 | 1 | 0 of 1 |" in sides
    assert "| shuffle | 1 | 0 | 1 | 0 | 1 of 1 |" in sides  # position 2 showed proposal 1
    (tmp_path / "run.jsonl.strategies.jsonl").write_text(
        json.dumps({"key": "q1|staircase=8", "text": "Answer: B\n\nB is Answer: B\n\nB is right.", "note": {},
                    "tokens": 60, "seconds": 2.5}) + "\n"
    )  # fmt: skip
    against = quality.against_moa(output)
    assert (
        "| MoA (staircase=8) | 100.0% (20.7%-100.0%) | 1/1 | +100.0 pts (p=1.00) | 60 | 1 of 1 |" in against
    )
    assert "| MoA | 0.0% (0.0%-79.3%) | 0/1 | - | 20 | 0 of 1 |" in against
    assert not quality.begins_again("Answer: B\n\nBecause the answer: it is B.")


def test_the_latency_summary_reads_servebenchs_per_request_times() -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import latency  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(SCRIPT.parent))
    requests = [
        {"ok": True, "ttft": 0.5 + i / 100, "e2e": 2.0 + i / 10, "chunk_times": [0.5, 0.525, 0.55, 1.0]}
        for i in range(20)
    ] + [{"ok": False, "error": "HTTP 500"}]
    summary = latency._summary({"levels": [{"value": 1.0, "requests": requests}]})["1"]
    assert (summary["requests"], summary["failed"]) == (21, 1)
    assert summary["ttft_p50"] == pytest.approx(0.595) and summary["e2e_p95"] == pytest.approx(3.805)
    assert summary["itl_p50"] == pytest.approx(0.025) and summary["itl_p95"] == pytest.approx(0.45)


def test_the_scale_report_shows_each_setup_its_errors_and_the_crash_figures() -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import scale  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(SCRIPT.parent))
    level = {
        "requests": 10,
        "seconds": 1.0,
        "errors": 0,
        "non2xx": 1,
        "p50_ms": 5.0,
        "p95_ms": 9.0,
        "rps": 10.0,
    }
    results = {
        "date": "2026-11-30", "cores": 2, "seconds": 10, "crash": "runs started 20, retried 5",
        "moa_serve": [{"app": "moa", "workers": 2, "clients": 50, **level}],
        "agent_servers": [
            {"setup": "Agent Server, 2 workers", "clients": 50, "runs": 200, "runs_per_s": 18.94, "p50_ms": 2394.6,
             "p95_ms": 3051.7, "errors": 3, "error_kinds": {"runs.wait returned without the run's answer": 3},
             "threads": 50, "incomplete_threads": 0},
        ],
    }  # fmt: skip
    report = scale.report(results)
    assert "| moa | 2 | 50 | 10 | 5.0 | 9.0 | 1 |" in report  # a non-2xx answer counts as an error
    assert "| Agent Server, 2 workers | 50 | 18.9 | 2395 | 3052 | 3 | 0 of 50 |" in report
    assert (
        "Errors of Agent Server, 2 workers at 50 clients: 3 x `runs.wait returned without the run's answer`"
        in report
    )
    assert report.rstrip().endswith("Figures of this run: runs started 20, retried 5.")


def test_the_arithmetic_problems_are_fixed_by_their_seed_and_their_answers_read_back() -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    import arithmetic

    from langchain_moa.answers import number_answer

    rows = arithmetic.problems(100, seed=2026)
    assert rows == arithmetic.problems(100, seed=2026) and rows != arithmetic.problems(100, seed=1)
    assert len({r["question"] for r in rows}) == 100
    for row in rows:
        assert str(row["question"]).endswith(arithmetic.INSTRUCTION)
        assert isinstance(row["answer"], int) and row["answer"] > 0
        assert number_answer(f"Answer: {row['answer']}. Because ...") == row["answer"]
    # The first of each kind, worked by hand.
    assert [(r["question"].split(" Work it out")[0], r["answer"]) for r in rows[:5]] == [
        ("Ben has 37 cookies. Ben buys 6 bags with 4 cookies in each, then gives away 15 cookies. "
         "How many cookies does Ben have now?", 46),  # 37 + 6 * 4 - 15
        ("Jonas has 21 stamps and finds 76 more. Jonas shares them equally among 8 friends and keeps "
         "the 1 left over. How many stamps does each friend get?", 12),  # (21 + 76 - 1) / 8
        ("Hugo buys 2 books at 11 dollars each and pays with 30 dollars. How many dollars of change "
         "does Hugo get?", 8),  # 30 - 2 * 11
        ("Ben collects 3 pencils on each weekday and 19 pencils on each day of the weekend. How many "
         "pencils does Ben collect in 2 weeks?", 106),  # 2 * (5 * 3 + 2 * 19)
        ("Dev has 16 cookies. Hugo has 3 times as many cookies as Dev, minus 6. How many cookies do "
         "Hugo and Dev have together?", 58),  # 16 + 3 * 16 - 6
    ]  # fmt: skip
