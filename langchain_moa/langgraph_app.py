"""The MoA graph as LangGraph Server and LangGraph Studio serve it (see ``langgraph.json``).

``make_graph`` is a graph factory: the server calls it for each run with the assistant's (or the
run's) configuration, so one deployment serves any MoA configuration::

    client.assistants.create("moa", config={"configurable": {
        "preset": "together", "layers": 3, "temperature": 0.2, "max_tokens": 512}})

The configuration is a ``preset`` plus any ``MoAOptions`` field, checked like every other MoA
configuration (a bad value fails the run at its start, naming the value). With none, the embedded
``local`` preset runs (no API key). Studio's assistant form is typed from the same options. The
server's own checkpointer keeps each thread's messages.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, Field, create_model

from langchain_moa.aggregation import STRATEGIES
from langchain_moa.errors import MoAConfigError
from langchain_moa.extras import install_command
from langchain_moa.graph import MoAGraph, build_moa_graph
from langchain_moa.models import split_model_string
from langchain_moa.options import MoAOptions, option_names
from langchain_moa.presets import PRESETS, overridden, preset_fields

if TYPE_CHECKING:  # LangGraph Server reads the annotation by name (its factory API)
    from langgraph_sdk.runtime import ServerRuntime

__all__ = ["MoAConfiguration", "configured_fields", "make_graph"]


def _served(name: str) -> tuple[Any, Any]:
    field = MoAOptions.model_fields[name]
    served_types: dict[str, Any] = {
        "proposers": list[str],
        "aggregator": str,
        "aggregation": Literal[STRATEGIES],  # a function cannot travel
    }
    annotation: Any = served_types.get(name, field.annotation)
    return annotation | None, Field(default=None, description=field.description)


MoAConfiguration: type[BaseModel] = create_model(
    "MoAConfiguration",
    __doc__="What an assistant or a run may configure: a preset, and any MoA option over it.",
    preset=(str | None, Field(default=None, description=f"A named configuration: {', '.join(PRESETS)}.")),
    # An embedding model is an object: it cannot travel in a run's configuration.
    **{name: _served(name) for name in option_names() if name != "agreement_embeddings"},  # type: ignore[call-overload]
)
"""The served configuration, derived from ``MoAOptions`` (models as ``"provider:model"`` strings)."""


def _default_preset() -> str:
    if importlib.util.find_spec("xllamacpp") is not None:
        return "local"
    # Named with this interpreter: a server often runs in an environment of its own (.venv-cluster).
    msg = (
        "the MoA graph's default is the embedded local preset, whose backend is not installed in the "
        f"server's environment ({sys.prefix}): {sys.executable} -m {install_command('local')}, or "
        'configure another preset (e.g. "together" with TOGETHER_API_KEY set) in the assistant\'s '
        "configurable, or a configuration file (MOA_CONFIG)"
    )
    raise MoAConfigError(msg)


CONFIG_VARIABLE = "MOA_CONFIG"
"""A TOML configuration file (``langchain_moa.config_file``) the server's operator names: the base of
every run's configuration. A path never comes from a request: a client could name any file."""


def configured_fields(configurable: Mapping[str, Any]) -> dict[str, Any]:
    """``MoAOptions`` fields from a configuration: the preset's (or ``MOA_CONFIG``'s file's), overridden
    by the rest.

    Keys that are not MoA options (``thread_id`` and the server's own) are left out.
    """
    chosen = {k: v for k, v in configurable.items() if k in MoAConfiguration.model_fields}
    preset = chosen.pop("preset", None)
    if (path := os.environ.get(CONFIG_VARIABLE)) and not preset:
        from langchain_moa.config_file import load_config

        return overridden(load_config(path), **chosen)
    return preset_fields(preset or _default_preset(), **chosen)


class _StandIn(BaseChatModel):
    """A model that only stands for one in a drawing: the server reads a graph without running it."""

    model_name: str

    @property
    def _llm_type(self) -> str:
        return "stand-in"

    def _generate(self, messages: Sequence[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        msg = f"{self.model_name} is a stand-in for drawing the graph and cannot answer"
        raise RuntimeError(msg)


def stand_ins(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The same fields with stand-in models: draws the graph without keys, servers or network."""

    def stand_in(spec: Any) -> Any:
        return _StandIn(model_name=split_model_string(spec)[1]) if isinstance(spec, str) else spec

    return {
        **fields,
        "proposers": [stand_in(p) for p in fields["proposers"]],
        "aggregator": stand_in(fields["aggregator"]),
    }


def make_graph(config: RunnableConfig, *, runtime: ServerRuntime | None = None) -> MoAGraph:
    """Graph factory for ``langgraph.json``: the MoA graph of this assistant's configuration.

    ``runtime``: why the server calls (LangGraph Server's factory API); ``None`` (a server that passes only
    the configuration, or a caller), to run the graph. Keyword-only: servers that take a factory of one
    configuration argument (GraphHarbor's) accept it too."""
    fields = configured_fields(config.get("configurable") or {})
    if runtime is not None and runtime.execution_runtime is None:
        # The server only reads this graph (drawing, schemas, state): no model needs to exist.
        fields = stand_ins(fields)
    # Studio draws its assistant form from the graph's context schema: the typed configuration.
    return build_moa_graph(**fields, context_schema=MoAConfiguration)
