"""Every example runs as its docstring says (here with --fake, in this process: ``run_example``) and does
what it is about."""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def ok(run_example: Callable[..., Any], name: str, *args: str) -> str:
    """What the example printed, once it exited 0."""
    done = run_example(name, *args)
    assert done.code == 0, done.stderr
    return done.stdout


ALL = ["quickstart", "advanced_moa", "lcel_chain", "agent", "rag", "structured_output", "self_moa"]


@pytest.mark.parametrize("name", ALL)
def test_every_example_says_how_to_run_it(name: str) -> None:
    docstring = ast.get_docstring(ast.parse((EXAMPLES / f"{name}.py").read_text()))
    assert docstring is not None
    assert f"python examples/{name}.py" in docstring
    assert f"[{name}.py](examples/{name}.py)" in (EXAMPLES.parent / "docs" / "examples.md").read_text()


def test_quickstart_streams_an_aggregate_of_four_proposals(run_example: Callable[..., Any]) -> None:
    out = ok(run_example, "quickstart", "--fake")
    assert "A: An aggregated answer." in out
    assert "(4 proposals aggregated;" in out


def test_advanced_prints_what_each_layer_proposed(run_example: Callable[..., Any]) -> None:
    out = ok(run_example, "advanced_moa", "--fake")
    layer_1, layer_2 = out.split("== layer 2")
    assert layer_1.count("first draft") == 3
    assert layer_2.split("== final answer")[0].count("refining the previous layer") == 3


def test_lcel_chain_batches_through_prompt_model_and_parser(run_example: Callable[..., Any]) -> None:
    assert ok(run_example, "lcel_chain", "--fake").splitlines() == [
        "tea: Slogan: tea!",
        "the moon: Slogan: the moon!",
        "bicycles: Slogan: bicycles!",
    ]


def test_agent_calls_both_tools_and_answers_from_their_results(run_example: Callable[..., Any]) -> None:
    out = ok(run_example, "agent", "--fake")
    assert "tool call: city_population({'city': 'Paris'})\ntool result: 2102650" in out
    assert "tool call: calculate({'expression': '2102650 * 3'})\ntool result: 6307950" in out
    assert "answer: The population of Paris times 3 is 6,307,950." in out


def test_rag_answers_from_the_retrieved_source_and_cites_it(run_example: Callable[..., Any]) -> None:
    out = ok(run_example, "rag", "--fake", "What causes tides?")
    assert "Sources: tides.md" in out
    assert "A: Tides are caused mainly by the Moon's gravity, which pulls harder" in out
    assert out.split("A: ")[1].split("\n")[0].endswith("[tides.md]")
    out = ok(run_example, "rag", "--fake", "How do bees tell the hive where food is?")
    assert "Sources: honey-bees.md" in out and "[honey-bees.md]" in out


def test_rag_says_so_when_nothing_is_retrieved(run_example: Callable[..., Any]) -> None:
    out = ok(run_example, "rag", "--fake", "quantum chromodynamics")
    assert "A: The documents say nothing about this." in out and "Sources: none matched" in out


def test_structured_output_returns_the_pydantic_model(run_example: Callable[..., Any]) -> None:
    out = ok(run_example, "structured_output", "--fake")
    assert "Movie(title='Spirited Away', year=2001, director='Hayao Miyazaki')" in out


def test_self_moa_samples_one_model(run_example: Callable[..., Any]) -> None:
    out = ok(run_example, "self_moa", "--fake")
    assert "4 samples of fake-sampler" in out
    assert "aggregated: Aggregated: octopuses have three hearts." in out


@pytest.mark.parametrize("name", ["agent", "structured_output"])
def test_tool_examples_refuse_local_with_the_reason_and_say_when_they_are_scripted(
    name: str, run_example: Callable[..., Any]
) -> None:
    refused = run_example(name, "--local")
    assert refused.code != 0 and refused.stdout == ""
    assert "the embedded 0.5B model does not call tools reliably" in refused.stderr
    assert "--fake" in refused.stderr and "TOGETHER_API_KEY" in refused.stderr
    default = run_example(name)  # no key: scripted, and it says so
    assert default.code == 0, default.stderr
    assert "Running on scripted models (--fake)" in default.stderr


@pytest.mark.parametrize("name", ALL)
def test_a_scripted_run_says_it_is_scripted(name: str, run_example: Callable[..., Any]) -> None:
    done = run_example(name, "--fake")
    assert done.code == 0, done.stderr
    assert (
        done.stderr.count("Running on scripted models (--fake): this shows the wiring, not real answers.")
        == 1
    )


def test_a_local_run_says_so_once_before_the_model_loads(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    sys.path.insert(0, str(EXAMPLES))
    try:
        from _backend import backend  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(EXAMPLES))
    args = argparse.Namespace(fake=False, local=True, max_tokens=None)
    assert backend(args) == "local" and backend(args) == "local"  # decided once
    assert capsys.readouterr().err.count("Running on the embedded Qwen2.5-Coder-0.5B") == 1


def test_the_agent_example_reuses_proposals_with_turn_fanout(run_example: Callable[..., Any]) -> None:
    every = ok(run_example, "agent", "--fake").splitlines()[-1]
    once = ok(run_example, "agent", "--fake", "--fanout", "turn").splitlines()[-1]
    assert every == "cost: 3 MoA calls, 9 proposer calls, 509 tokens"
    assert once == "cost: 3 MoA calls, 3 proposer calls, 374 tokens"
