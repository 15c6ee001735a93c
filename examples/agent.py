"""A tool-calling agent: ``langchain.agents.create_agent`` with MoA as its model and two real tools.

The aggregator makes the tool calls; proposers see the calls and their results as text.

    python examples/agent.py                 # Together with TOGETHER_API_KEY
    python examples/agent.py --fake          # scripted models (the default without a key: a 0.5B
                                             # local model does not call tools reliably)
    python examples/agent.py --fanout turn   # proposers once per user turn, not on every tool call
"""

from __future__ import annotations

import ast
import operator
import re

from _backend import backend, models, parser
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from langchain_moa import MoAChatModel

POPULATION = {"paris": 2_102_650, "tokyo": 13_960_236, "lagos": 15_388_000}
QUESTION = "What is the population of Paris multiplied by 3?"


@tool
def city_population(city: str) -> int:
    """Population of a city (Paris, Tokyo or Lagos)."""
    return POPULATION[city.strip().lower()]


_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


@tool
def calculate(expression: str) -> float:
    """Evaluate an arithmetic expression with + - * / and parentheses."""

    def evaluate(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](evaluate(node.left), evaluate(node.right))
        raise ValueError(f"unsupported expression: {expression!r}")

    return evaluate(ast.parse(expression, mode="eval").body)


def scripted_aggregator(messages, kwargs):  # what a capable model does with these tools
    results = [m for m in messages if m.type == "tool"]
    if not results:
        city = re.search(r"population of (\w+)", messages[-1].text).group(1)
        return AIMessage("", tool_calls=[{"name": "city_population", "args": {"city": city}, "id": "call_1"}])
    if len(results) == 1:
        return AIMessage(
            "",
            tool_calls=[
                {"name": "calculate", "args": {"expression": f"{results[0].text} * 3"}, "id": "call_2"}
            ],
        )
    return f"The population of Paris times 3 is {float(results[1].text):,.0f}."


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--fanout", default="call", help="when the proposers run: call (default), turn, or N")
    args = p.parse_args()
    args.backend = backend(args, calls_tools=True)
    fanout = int(args.fanout) if args.fanout.isdigit() else args.fanout
    moa = MoAChatModel(**models(args, n=3, fake_aggregator=scripted_aggregator), fanout=fanout)
    agent = create_agent(moa, [city_population, calculate])
    result = agent.invoke({"messages": [("user", QUESTION)]})
    for message in result["messages"]:
        if isinstance(message, AIMessage) and message.tool_calls:
            for call in message.tool_calls:
                print(f"tool call: {call['name']}({call['args']})")
        elif message.type == "tool":
            print(f"tool result: {message.text}")
    print(f"answer: {result['messages'][-1].text}")
    moa_answers = [m for m in result["messages"] if isinstance(m, AIMessage)]
    proposer_calls = sum(len(layer) for m in moa_answers for layer in m.response_metadata["moa"]["layers"])
    tokens = sum((m.usage_metadata or {}).get("total_tokens", 0) for m in moa_answers)
    print(f"cost: {len(moa_answers)} MoA calls, {proposer_calls} proposer calls, {tokens} tokens")


if __name__ == "__main__":
    main()
