"""The graph factory LangGraph Server and Studio call (``langgraph.json``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from langchain_moa import MoAConfigError
from langchain_moa.langgraph_app import MoAConfiguration, configured_fields, make_graph

ROOT = Path(__file__).resolve().parents[2]


def test_langgraph_json_names_the_factory() -> None:
    config = json.loads((ROOT / "langgraph.json").read_text())
    assert config["graphs"] == {"moa": "./langchain_moa/langgraph_app.py:make_graph"}
    assert config["dependencies"] == ["."]


def test_the_default_configuration_is_the_local_preset(
    monkeypatch: pytest.MonkeyPatch, introspection: object
) -> None:
    import importlib.util

    real = importlib.util.find_spec  # the default needs the backend installed, not running
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: object() if name == "xllamacpp" else real(name)
    )
    fields = configured_fields({})
    assert fields["proposers"] == ["local:qwen2.5-coder-0.5b"] * 3
    graph = make_graph({"configurable": {}}, runtime=introspection)
    proposers = [f"layer 1 #{i} qwen2.5-coder-0.5b" for i in (1, 2, 3)]
    assert [n for n in graph.nodes if n.startswith("layer")] == proposers


def test_an_assistant_configuration_shapes_the_graph(
    monkeypatch: pytest.MonkeyPatch, introspection: object
) -> None:
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    configurable = {
        "preset": "together",
        "layers": 3,
        "proposers": "a/x,b/y",
        "max_tokens": 99,
        "thread_id": "t",
    }
    fields = configured_fields(configurable)
    assert fields["proposers"] == ["a/x", "b/y"] and fields["layers"] == 3 and fields["max_tokens"] == 99
    assert fields["aggregator"] == "Qwen/Qwen2.5-72B-Instruct-Turbo"
    graph = make_graph({"configurable": configurable}, runtime=introspection)  # drawn without a key
    assert "layer 2 #2 y" in graph.nodes


def test_running_a_together_configuration_without_a_key_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    with pytest.raises(MoAConfigError, match="set TOGETHER_API_KEY"):
        make_graph({"configurable": {"preset": "together"}})


def test_without_the_local_backend_the_default_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "xllamacpp" else real(name))
    with pytest.raises(MoAConfigError) as raised:
        make_graph({"configurable": {}})
    # The command names this environment's interpreter: a server often runs in one of its own.
    assert f"server's environment ({sys.prefix}): {sys.executable} -m pip install" in str(raised.value)
    assert "[local]" in str(raised.value) and "or configure another preset" in str(raised.value)


def test_a_served_configuration_turns_staircase_on_and_checks_it(
    monkeypatch: pytest.MonkeyPatch, introspection: object
) -> None:
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    assert {"staircase", "staircase_layout", "proposer_max_tokens"} <= set(MoAConfiguration.model_fields)
    configurable = {"preset": "together", "staircase": 16, "proposer_max_tokens": 128}
    graph = make_graph({"configurable": {**configurable}}, runtime=introspection)
    edges = {(e.source, e.target) for e in graph.get_graph().edges}
    assert ("__start__", "aggregator") in edges  # the aggregator runs beside the proposers
    with pytest.raises(MoAConfigError, match="staircase must be an integer >= 1"):
        make_graph({"configurable": {"preset": "together", "staircase": 0}}, runtime=introspection)
    with pytest.raises(MoAConfigError, match="staircase_layout must be 'auto', 'prefill' or 'turns'"):
        make_graph({"configurable": {**configurable, "staircase_layout": "x"}}, runtime=introspection)


def test_a_preset_carries_any_option() -> None:
    from langchain_moa.presets import Preset

    preset = Preset(name="p", description="", proposers=("a/x",), aggregator="a/y", layers=2,
                    options={"staircase": 8})  # fmt: skip
    assert preset.model_fields()["staircase"] == 8
