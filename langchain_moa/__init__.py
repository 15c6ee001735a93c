"""Mixture-of-Agents (Wang et al. 2024) as a LangChain chat model backed by a LangGraph graph."""

from langchain_moa.chat_models import MoAChatModel
from langchain_moa.errors import AggregatorError, MoAConfigError, MoAError
from langchain_moa.events import MoAEvent, observe
from langchain_moa.graph import build_moa_graph
from langchain_moa.options import MoAOptions
from langchain_moa.prompts import AGGREGATOR_PROMPT
from langchain_moa.state import MoAContext, MoAState, Proposal

__all__ = [
    "AGGREGATOR_PROMPT",
    "AggregatorError",
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
