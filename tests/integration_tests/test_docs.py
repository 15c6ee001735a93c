"""The documentation site builds in strict mode (every page, link, anchor and API reference entry), and
the chat model integration page runs as written, printing what it shows (``#>`` lines)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pytest_examples import CodeExample, EvalExample, find_examples

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "integrations" / "chat-model.md"


@pytest.mark.slow
def test_the_site_builds_in_strict_mode(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    page = (tmp_path / "site" / "integrations" / "chat-model" / "index.html").read_text()
    assert "Tool calling" in page and "Structured output" in page
    reference = (tmp_path / "site" / "reference" / "index.html").read_text()
    assert "aggregator_prompt" in reference  # an option's documentation, read from the options model


def test_the_chat_model_page_runs_as_written(eval_example: EvalExample) -> None:
    examples: list[CodeExample] = list(find_examples(PAGE))
    assert len(examples) >= 7
    namespace: dict[str, Any] = {}
    for example in examples:  # one page, one namespace: each block goes on from the ones before
        if eval_example.update_examples:
            namespace = eval_example.run_print_update(example, module_globals=namespace)
        else:
            namespace = eval_example.run_print_check(example, module_globals=namespace)


@pytest.mark.parametrize("name", ["README.md", "CONTRIBUTING.md"])
def test_every_relative_link_outside_the_site_leads_to_a_file(name: str) -> None:
    import re

    text = (ROOT / name).read_text()
    links = [t for t in re.findall(r"\]\(([^)]+)\)", text) if "://" not in t and not t.startswith("#")]
    assert links
    missing = [t for t in links if not (ROOT / t.split("#")[0]).exists()]
    assert not missing, missing
