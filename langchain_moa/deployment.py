"""The MoA graph as LangGraph Server and LangGraph Studio serve it (see ``langgraph.json``).

``make_graph`` is a graph factory: the server calls it for each run with the assistant's (or the
run's) configuration, so one deployment serves any MoA configuration::

    client.assistants.create("moa", config={"configurable": {
        "preset": "together", "layers": 3, "temperature": 0.2, "max_tokens": 512}})

Configurable keys: ``preset``, ``proposers`` (list of model strings), ``aggregator``, ``layers``,
``temperature``, ``max_tokens``. With none, the embedded ``local`` preset runs (no API key). The
server's own checkpointer keeps each thread's messages.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig

from langchain_moa.errors import MoAConfigError
from langchain_moa.fakes import ScriptedChatModel
from langchain_moa.graph import MoAGraph, build_moa_graph
from langchain_moa.models import split_model_string
from langchain_moa.presets import preset_fields

__all__ = ["CONFIGURABLE_KEYS", "configured_fields", "draw_models", "make_graph"]

CONFIGURABLE_KEYS = ("preset", "proposers", "aggregator", "layers", "temperature", "max_tokens")
"""What an assistant or a run may configure."""


def _default_preset() -> str:
    if importlib.util.find_spec("xllamacpp") is not None:
        return "local"
    msg = (
        "the MoA graph's default is the embedded local preset, whose backend is not installed: "
        'pip install "langchain-moa[local]", or configure another preset (e.g. "together" with '
        "TOGETHER_API_KEY set) in the assistant's configurable"
    )
    raise MoAConfigError(msg)


def configured_fields(configurable: Mapping[str, Any]) -> dict[str, Any]:
    """``build_moa_graph`` arguments from a configuration: the preset's, overridden by the rest."""
    chosen = {k: v for k, v in configurable.items() if k in CONFIGURABLE_KEYS}
    return preset_fields(chosen.pop("preset", None) or _default_preset(), **chosen)


def draw_models(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The same fields with stand-in models: draws the graph without keys, servers or network."""

    def stand_in(spec: Any) -> Any:
        return ScriptedChatModel(model_name=split_model_string(spec)[1]) if isinstance(spec, str) else spec

    return {
        **fields,
        "proposers": [stand_in(p) for p in fields["proposers"]],
        "aggregator": stand_in(fields["aggregator"]),
    }


def make_graph(config: RunnableConfig) -> MoAGraph:
    """Graph factory for ``langgraph.json``: the MoA graph of this assistant's configuration."""
    configurable = config.get("configurable") or {}
    fields = configured_fields(configurable)
    if configurable.get("__is_for_execution__") is False:
        # The server only reads this graph (drawing, schemas): no model needs to exist.
        fields = draw_models(fields)
    return build_moa_graph(**fields)
