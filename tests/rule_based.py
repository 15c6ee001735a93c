"""A deterministic responder for LangChain's standard test suites (used with ScriptedChatModel).

It reads the request the way a capable model would for those suites' prompts: with tools bound it
calls the tool the prompt names (or is told to), taking integers and quoted strings from the prompt
as arguments; otherwise it answers in text.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

_GENERIC_CHOICES = {"any", "auto", "required", "none"}


def _last_human_text(messages: list[BaseMessage]) -> str:
    return next((m.text for m in reversed(messages) if isinstance(m, HumanMessage)), "")


def _arguments(function: dict[str, Any], text: str) -> dict[str, Any]:
    properties = (function.get("parameters") or {}).get("properties", {})
    integers = [int(x) for x in re.findall(r"-?\d+", text)]
    quoted = re.findall(r"'([^']+)'", text)
    arguments: dict[str, Any] = {}
    for name, spec in properties.items():
        kind = spec.get("type") or next(
            (a.get("type") for a in spec.get("anyOf", []) if a.get("type") != "null"), "string"
        )
        if kind == "integer":
            arguments[name] = integers.pop(0) if integers else 0
        elif kind == "number":
            arguments[name] = float(integers.pop(0)) if integers else 0.0
        elif kind == "boolean":
            arguments[name] = True
        else:
            arguments[name] = quoted.pop(0) if quoted else f"{name} value"
    return arguments


def reply(messages: list[BaseMessage], kwargs: dict[str, Any]) -> str | AIMessage:
    """Answer as the standard suites expect of a capable model."""
    text = _last_human_text(messages)
    tools = kwargs.get("tools")
    if tools and not isinstance(messages[-1], ToolMessage):
        functions = [t["function"] for t in tools]
        choice = kwargs.get("tool_choice")
        if isinstance(choice, dict):
            choice = choice.get("function", {}).get("name") or choice.get("name")
        if isinstance(choice, str) and choice not in _GENERIC_CHOICES:
            chosen = next(f for f in functions if f["name"] == choice)
        else:
            chosen = next((f for f in functions if f["name"] in text), functions[0])
        call = {
            "name": chosen["name"],
            "args": _arguments(chosen, text),
            "id": f"call_{uuid.uuid4().hex[:8]}",
        }
        return AIMessage("", tool_calls=[call])
    answer = f"Here is my answer to: {text or 'the conversation'}"
    for stop in kwargs.get("stop") or []:
        answer = answer.split(stop)[0] or answer
    return answer
