"""OpenAI's chat-completions format going out: answers, chunks and errors (requests: ``requests``)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk

from langchain_moa.conversation import was_cut

__all__ = [
    "completion",
    "delta_of",
    "error_body",
    "finish_reason_of",
    "new_id",
    "stream_chunk",
    "usage_of",
]


def error_body(
    message: str, *, kind: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error JSON."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def finish_reason_of(message: AIMessage | AIMessageChunk) -> str:
    if message.tool_calls or getattr(message, "tool_call_chunks", None):
        return "tool_calls"
    return "length" if was_cut(message) else "stop"


def usage_of(message: AIMessage | AIMessageChunk) -> dict[str, Any] | None:
    """OpenAI's usage block, with the cost in US dollars as an extra field (``null`` when a price or a
    call's usage is unknown: never a zero that is not one)."""
    usage = message.usage_metadata
    if usage is None:
        return None
    cost = (message.response_metadata.get("moa") or {}).get("cost") or {}
    return {
        "prompt_tokens": usage["input_tokens"],
        "completion_tokens": usage["output_tokens"],
        "total_tokens": usage["total_tokens"],
        "cost_usd": cost.get("total"),
    }


def _tool_calls(message: AIMessage) -> list[dict[str, Any]]:
    return [
        {
            "id": call["id"],
            "type": "function",
            "function": {"name": call["name"], "arguments": json.dumps(call["args"])},
        }
        for call in message.tool_calls
    ]


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def completion(message: AIMessage, model: str, moa: dict[str, Any] | None = None) -> dict[str, Any]:
    """A whole answer as ``chat.completion``, the MoA details under ``moa`` (clients ignore it)."""
    body: dict[str, Any] = {"role": "assistant", "content": message.text}
    if message.tool_calls:
        body["tool_calls"] = _tool_calls(message)
    return {
        "id": new_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": body, "finish_reason": finish_reason_of(message), "logprobs": None}
        ],
        "usage": usage_of(message),
        "moa": moa if moa is not None else message.response_metadata.get("moa"),
    }


def stream_chunk(
    completion_id: str,
    model: str,
    *,
    delta: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    usage: dict[str, Any] | None = None,
    moa: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``; with ``usage`` and no ``delta``, the closing usage chunk."""
    chunk: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }
    chunk["choices"] = (
        []
        if delta is None
        else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
    )
    if usage is not None:
        chunk["usage"] = usage
    if moa is not None:
        chunk["moa"] = moa
    return chunk


def delta_of(chunk: AIMessageChunk) -> dict[str, Any]:
    """What one streamed MoA chunk adds to the answer, as an OpenAI ``delta``."""
    delta: dict[str, Any] = {}
    if chunk.text:
        delta["content"] = chunk.text
    if chunk.tool_call_chunks:
        delta["tool_calls"] = [
            {
                "index": tc.get("index") or 0,
                **({"id": tc["id"], "type": "function"} if tc.get("id") else {}),
                "function": {
                    **({"name": tc["name"]} if tc.get("name") else {}),
                    "arguments": tc.get("args") or "",
                },
            }
            for tc in chunk.tool_call_chunks
        ]
    return delta
