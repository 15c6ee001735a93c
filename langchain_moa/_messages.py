"""Small message conversions shared by the graph and the scripted fakes."""

from __future__ import annotations

import json

from langchain_core.messages import AIMessageChunk, BaseMessage


def as_chunk(message: BaseMessage) -> AIMessageChunk:
    """An ``AIMessageChunk`` equal to ``message`` (tool calls become tool-call chunks)."""
    if isinstance(message, AIMessageChunk):
        return message
    return AIMessageChunk(
        content=message.content,
        tool_call_chunks=[
            {
                "name": call["name"],
                "args": json.dumps(call["args"]),
                "id": call.get("id"),
                "index": i,
                "type": "tool_call_chunk",
            }
            for i, call in enumerate(getattr(message, "tool_calls", []))
        ],
        usage_metadata=getattr(message, "usage_metadata", None),
        response_metadata=message.response_metadata,
        id=message.id,
    )
