"""The benchmark script still runs (a tiny --quick run; benchmarks are not timed tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


@pytest.mark.slow
def test_the_benchmark_script_runs_and_writes_its_tables(tmp_path: Path) -> None:
    report = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--output", str(report)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    text = report.read_text()
    for heading in ("The engine side by side", "Wall time", "Orchestration overhead", "Time to first streamed token", "Many concurrent requests",
                    "Tail latency", "Start-up time of the command"):  # fmt: skip
        assert f"## {heading}" in text
    assert text.count("| 2 | 2 |") == 1 and "| 3 | 2 |" in text  # one row per measured configuration
