"""The conversation as MoA reads it: checks before any model is called, and the proposers' view."""

from __future__ import annotations

import json
from collections.abc import Sequence

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_moa.errors import InvalidConversationError
from langchain_moa.models import model_label

__all__ = ["as_chunk", "check_conversation", "check_inputs", "proposer_view", "was_cut"]


def check_conversation(messages: Sequence[BaseMessage]) -> None:
    """Refuse a conversation with nothing to answer (no message, or only blank text).

    Raises:
        InvalidConversationError: naming what is missing and how to ask instead.
    """
    if not messages:
        msg = "the conversation is empty: give at least one message, e.g. a user message asking something"
        raise InvalidConversationError(msg)
    # A system prompt alone asks nothing (chat front-ends send one with every request).
    if all(_is_blank(m) for m in messages if not isinstance(m, SystemMessage)):
        msg = (
            f"the conversation has only blank text besides any system prompt ({len(messages)} message(s)): "
            "ask something in a user message, e.g. 'Why is the sky blue?'"
        )
        raise InvalidConversationError(msg)


def _is_blank(message: BaseMessage) -> bool:
    if isinstance(message.content, str):
        return not message.content.strip() and not getattr(message, "tool_calls", None)
    # Content blocks: anything that is not text (an image, a file) is something to answer.
    return all(
        (isinstance(block, str) and not block.strip())
        or (
            isinstance(block, dict) and block.get("type") == "text" and not str(block.get("text", "")).strip()
        )
        for block in message.content
    ) and not getattr(message, "tool_calls", None)


_CUT_REASONS = {"length", "max_tokens", "MAX_TOKENS"}
"""How providers say an answer ran out of tokens (OpenAI and llama.cpp, Anthropic, Gemini)."""


def was_cut(message: BaseMessage) -> bool:
    """Whether an answer stopped at its token limit, whichever way its provider says so."""
    metadata = message.response_metadata
    return metadata.get("finish_reason") in _CUT_REASONS or metadata.get("stop_reason") in _CUT_REASONS


def proposer_view(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The conversation as a text-only model can read it.

    Proposers get no tools, so tool calls become assistant text and tool results become user text;
    every other message is kept as is.
    """
    tool_names: dict[str, str] = {}
    view: list[BaseMessage] = []
    for message in messages:
        if isinstance(message, AIMessage) and message.tool_calls:
            calls = []
            for call in message.tool_calls:
                tool_names[call.get("id") or ""] = call["name"]
                calls.append(f"{call['name']}({json.dumps(call['args'], ensure_ascii=False)})")
            text = message.text
            view.append(AIMessage(content=(text + "\n" if text else "") + "Called " + "; ".join(calls)))
        elif isinstance(message, ToolMessage):
            name = message.name or tool_names.get(message.tool_call_id, "tool")
            view.append(HumanMessage(content=f"Result of {name}: {message.text}"))
        else:
            view.append(message)
    return view


# Content block types and the model-profile flag that says whether a model accepts them.
_MEDIA_PROFILE_KEYS = {
    "image": "image_inputs",
    "image_url": "image_inputs",
    "audio": "audio_inputs",
    "input_audio": "audio_inputs",
    "file": "pdf_inputs",
    "video": "video_inputs",
}


def check_inputs(messages: Sequence[BaseMessage], models: Sequence[BaseChatModel]) -> None:
    """Refuse media a model's profile says it cannot take, before any model is called.

    Raises:
        InvalidConversationError: naming the message, the kind of content and the model.
    """
    for number, message in enumerate(messages, start=1):
        blocks = message.content if isinstance(message.content, list) else []
        kinds = [
            str(b.get("type")) for b in blocks if isinstance(b, dict) and b.get("type") in _MEDIA_PROFILE_KEYS
        ]
        for kind in kinds:
            key = _MEDIA_PROFILE_KEYS[kind]
            for model in models:
                if (getattr(model, "profile", None) or {}).get(key) is False:
                    msg = (
                        f"message {number} has {kind} content, which {model_label(model)} does not "
                        f"accept ({key}=False in its profile): send text only, or choose models that take it"
                    )
                    raise InvalidConversationError(msg)


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
