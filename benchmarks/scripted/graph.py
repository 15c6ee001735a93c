"""The MoA graph on scripted models that answer at once: what a server benchmark measures is the server.

Served only by the benchmarks (``benchmarks/scale.py``) through this folder's own ``langgraph.json``;
the repository's ``langgraph.json``, which users serve, never names it.
"""

from langchain_core.runnables import RunnableConfig

from langchain_moa.fakes import ScriptedChatModel
from langchain_moa.graph import MoAGraph, build_moa_graph

PROPOSERS, LAYERS = 4, 2


def make_graph(config: RunnableConfig) -> MoAGraph:
    proposers = [
        ScriptedChatModel(answer=f"Proposal {i + 1}: Rayleigh scattering.") for i in range(PROPOSERS)
    ]
    aggregator = ScriptedChatModel(answer="Because air scatters blue light the most.")
    return build_moa_graph(proposers=proposers, aggregator=aggregator, layers=LAYERS)
