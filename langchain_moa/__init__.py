"""Mixture-of-Agents (Wang et al. 2024) as a LangChain chat model backed by a LangGraph graph.

Names are imported on first use, so ``moa --help`` and other commands that call no model start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_moa.chat_models import MoAChatModel
    from langchain_moa.errors import AggregatorError, InvalidConversationError, MoAConfigError, MoAError
    from langchain_moa.events import MoAEvent, observe
    from langchain_moa.graph import build_moa_graph
    from langchain_moa.options import MoAOptions
    from langchain_moa.prompts import AGGREGATOR_PROMPT
    from langchain_moa.state import MoAContext, MoAState, Proposal

__all__ = [
    "AGGREGATOR_PROMPT",
    "AggregatorError",
    "InvalidConversationError",
    "MoAChatModel",
    "MoAConfigError",
    "MoAContext",
    "MoAError",
    "MoAEvent",
    "MoAOptions",
    "MoAState",
    "Proposal",
    "build_moa_graph",
    "observe",
]

_WHERE = {
    "AGGREGATOR_PROMPT": "prompts",
    "AggregatorError": "errors",
    "InvalidConversationError": "errors",
    "MoAChatModel": "chat_models",
    "MoAConfigError": "errors",
    "MoAContext": "state",
    "MoAError": "errors",
    "MoAEvent": "events",
    "MoAOptions": "options",
    "MoAState": "state",
    "Proposal": "state",
    "build_moa_graph": "graph",
    "observe": "events",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'langchain_moa' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"langchain_moa.{_WHERE[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
