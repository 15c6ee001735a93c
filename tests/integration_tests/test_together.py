"""MoA against the real Together API: runs with TOGETHER_API_KEY set, skips cleanly without it."""

from __future__ import annotations

import os
from typing import Any

import pytest

from langchain_moa import MoAChatModel
from tests.standard_suite import MoAIntegrationTests

pytestmark = pytest.mark.skipif(not os.environ.get("TOGETHER_API_KEY"), reason="needs TOGETHER_API_KEY")

PROPOSERS = ["meta-llama/Llama-3.3-70B-Instruct-Turbo", "Qwen/Qwen2.5-72B-Instruct-Turbo"]
AGGREGATOR = "Qwen/Qwen2.5-72B-Instruct-Turbo"


def test_a_real_two_layer_answer() -> None:
    moa = MoAChatModel(proposers=PROPOSERS, aggregator=AGGREGATOR, max_tokens=128, temperature=0.7)
    result = moa.invoke("Name the largest planet of the solar system in one sentence.")
    assert "jupiter" in result.text.lower()
    layers = result.response_metadata["moa"]["layers"]
    assert [p["model"] for p in layers[0]] == PROPOSERS
    assert result.usage_metadata is not None and result.usage_metadata["total_tokens"] > 0


class TestMoAOnTogether(MoAIntegrationTests):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"proposers": PROPOSERS, "aggregator": AGGREGATOR, "temperature": 0}
