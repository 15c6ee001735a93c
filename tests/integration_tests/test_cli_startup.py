"""What a fresh interpreter imports for a command that calls no model (``moa --help``, ``moa presets``):
nothing of the engine. Start-up time is measured in benchmarks/RESULTS.md; this pins its cause."""

from __future__ import annotations

import subprocess
import sys


def test_commands_that_call_no_model_do_not_import_the_engine() -> None:
    code = (
        "import sys; from langchain_moa.cli import app; "
        "print(sorted(m for m in ('langgraph', 'langchain_core.language_models.chat_models', "
        "'langchain_moa.chat_models', 'langsmith') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
