"""``moa eval exact`` for real: the embedded local model on a handful of questions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.local_model, pytest.mark.slow]

MOA = str(Path(sys.executable).with_name("moa"))
QUESTIONS = [
    {"question": "What is 7 + 5? Answer with the number only.", "answer": "12"},
    {"question": "What is 9 times 3? Answer with the number only.", "answer": "27"},
    {"question": "What is the capital of France? Answer with one word.", "answer": "Paris"},
]


def test_moa_eval_exact_on_the_local_model(tmp_path: Path) -> None:
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    output = tmp_path / "results.jsonl"
    args = [MOA, "eval", "exact", "--questions", str(questions), "--output", str(output), "--preset", "local",
            "--reference-models", "local:qwen2.5-coder-0.5b,local:qwen2.5-coder-0.5b", "--max-tokens", "24",
            "--temperature", "0.7", "--quiet"]  # fmt: skip
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"}
    )
    assert done.returncode == 0, done.stderr
    rows = dict(line.split("\t")[:2] for line in done.stdout.splitlines())
    assert set(rows) == {"proposer 1: qwen2.5-coder-0.5b", "proposer 2: qwen2.5-coder-0.5b",
                         "majority vote of the proposals", "MoA"}  # fmt: skip
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(records) == 3 and all(r["moa"]["text"].strip() for r in records)
    print(done.stdout)
