"""Every example runs as its docstring says (here with --fake) and does what it is about."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ALL = ["quickstart", "advanced_moa", "lcel_chain", "agent", "rag", "structured_output", "self_moa"]


def run(name: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TOGETHER_API_KEY"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("name", ALL)
def test_every_example_says_how_to_run_it(name: str) -> None:
    docstring = ast.get_docstring(ast.parse((EXAMPLES / f"{name}.py").read_text()))
    assert docstring is not None
    assert f"python examples/{name}.py" in docstring
    assert f"[{name}.py](examples/{name}.py)" in (EXAMPLES.parent / "docs" / "examples.md").read_text()


def test_quickstart_streams_an_aggregate_of_four_proposals() -> None:
    out = run("quickstart", "--fake")
    assert "A: An aggregated answer." in out
    assert "(4 proposals aggregated;" in out


def test_advanced_prints_what_each_layer_proposed() -> None:
    out = run("advanced_moa", "--fake")
    layer_1, layer_2 = out.split("== layer 2")
    assert layer_1.count("first draft") == 3
    assert layer_2.split("== final answer")[0].count("refining the previous layer") == 3


def test_lcel_chain_batches_through_prompt_model_and_parser() -> None:
    assert run("lcel_chain", "--fake").splitlines() == [
        "tea: Slogan: tea!",
        "the moon: Slogan: the moon!",
        "bicycles: Slogan: bicycles!",
    ]


def test_agent_calls_both_tools_and_answers_from_their_results() -> None:
    out = run("agent", "--fake")
    assert "tool call: city_population({'city': 'Paris'})\ntool result: 2102650" in out
    assert "tool call: calculate({'expression': '2102650 * 3'})\ntool result: 6307950" in out
    assert "answer: The population of Paris times 3 is 6,307,950." in out


def test_rag_answers_from_the_retrieved_source_and_cites_it() -> None:
    out = run("rag", "--fake", "What causes tides?")
    assert "Sources: tides.md" in out
    assert "A: Tides are caused mainly by the Moon's gravity, which pulls harder" in out
    assert out.split("A: ")[1].split("\n")[0].endswith("[tides.md]")
    out = run("rag", "--fake", "How do bees tell the hive where food is?")
    assert "Sources: honey-bees.md" in out and "[honey-bees.md]" in out


def test_rag_says_so_when_nothing_is_retrieved() -> None:
    out = run("rag", "--fake", "quantum chromodynamics")
    assert "A: The documents say nothing about this." in out and "Sources: none matched" in out


def test_structured_output_returns_the_pydantic_model() -> None:
    out = run("structured_output", "--fake")
    assert "Movie(title='Spirited Away', year=2001, director='Hayao Miyazaki')" in out


def test_self_moa_samples_one_model() -> None:
    out = run("self_moa", "--fake")
    assert "4 samples of fake-sampler" in out
    assert "aggregated: Aggregated: octopuses have three hearts." in out


def _run_raw(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TOGETHER_API_KEY"}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize("name", ["agent", "structured_output"])
def test_tool_examples_refuse_local_with_the_reason_and_say_when_they_are_scripted(name: str) -> None:
    refused = _run_raw(name, "--local")
    assert refused.returncode != 0 and refused.stdout == ""
    assert "the embedded 0.5B model does not call tools reliably" in refused.stderr
    assert "--fake" in refused.stderr and "TOGETHER_API_KEY" in refused.stderr
    default = _run_raw(name)  # no key: scripted, and it says so
    assert default.returncode == 0, default.stderr
    assert "Running on scripted models (--fake)" in default.stderr


@pytest.mark.parametrize("name", ALL)
def test_a_scripted_run_says_it_is_scripted(name: str) -> None:
    done = _run_raw(name, "--fake")
    assert done.returncode == 0, done.stderr
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


def test_the_agent_example_reuses_proposals_with_turn_fanout() -> None:
    every = run("agent", "--fake").splitlines()[-1]
    once = run("agent", "--fake", "--fanout", "turn").splitlines()[-1]
    assert every == "cost: 3 MoA calls, 9 proposer calls, 509 tokens"
    assert once == "cost: 3 MoA calls, 3 proposer calls, 374 tokens"
