"""Examples on the embedded local model (the default without a key): real answers, end to end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytestmark = [pytest.mark.local_model, pytest.mark.slow]


def _printed(run_example: Callable[..., Any], *args: str) -> str:
    done = run_example(*args)
    assert done.code == 0, done.stderr
    return str(done.stdout)


def test_quickstart_on_the_local_model(run_example: Callable[..., Any]) -> None:
    out = _printed(run_example, "quickstart", "--local", "--max-tokens", "32")
    assert out.startswith("Q: Top things to do in NYC\nA: ")
    answer = out.split("A: ", 1)[1].split("\n\n(4 proposals aggregated;")[0]
    assert len(answer.split()) >= 5  # a real answer, streamed


def test_rag_on_the_local_model(run_example: Callable[..., Any]) -> None:
    out = _printed(run_example, "rag", "--local", "--max-tokens", "48", "Why is the sky blue?")
    assert "Sources: rayleigh-scattering.md" in out
    answer = out.split("A: ", 1)[1].lower()
    # Sampled at temperature 0.7: the answer draws on the passage, in words that vary from run to run.
    assert any(word in answer for word in ("scatter", "rayleigh", "wavelength", "molecule")), answer
