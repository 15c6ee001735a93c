"""One log line per request: method, path, model, status, time to first token, total time, tokens.

Never the key, never the conversation or the answer unless the operator asks for them
(``moa serve --log-content``). ``--log-format json`` writes one JSON object per line, for the usual
log tools; the default is ``key=value`` text.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import AIMessage, AIMessageChunk

__all__ = ["RequestLog", "configure", "logger"]

logger = logging.getLogger("langchain_moa.server.requests")


@dataclass
class RequestLog:
    """What one request did, written when it ends (a stream's end, for a streamed answer)."""

    method: str
    path: str
    content: bool = False
    """Whether the conversation and the answer go into the line."""
    model: str | None = None
    status: int | None = None
    started: float = field(default_factory=time.perf_counter)
    first_token_s: float | None = None
    tokens: int | None = None
    ignored: int = 0
    """Carried proposals ignored (unsigned, forged or malformed)."""
    messages: list[dict[str, Any]] | None = None
    answer: str = ""

    def asked(self, request: Any) -> None:
        if self.content:
            self.messages = [m.model_dump(exclude_none=True) for m in request.messages]

    def token(self, chunk: AIMessageChunk) -> None:
        if self.first_token_s is None and (chunk.text or chunk.tool_call_chunks):
            self.first_token_s = time.perf_counter() - self.started
        if self.content:
            self.answer += chunk.text

    def answered(self, message: AIMessage | AIMessageChunk) -> None:
        if self.first_token_s is None:
            self.first_token_s = time.perf_counter() - self.started
        if message.usage_metadata:
            self.tokens = message.usage_metadata["total_tokens"]
        if self.content and isinstance(message, AIMessage):
            self.answer = message.text

    def record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "method": self.method,
            "path": self.path,
            "model": self.model,
            "status": self.status,
            "ttft_s": None if self.first_token_s is None else round(self.first_token_s, 4),
            "total_s": round(time.perf_counter() - self.started, 4),
            "tokens": self.tokens,
        }
        if self.ignored:
            record["ignored_carried_proposals"] = self.ignored
        if self.content:
            record |= {"messages": self.messages, "answer": self.answer}
        return record

    def close(self) -> None:
        logger.info("%s %s", self.method, self.path, extra={"moa_request": self.record()})


_PLAIN = re.compile(r"[\w.:/@+-]+")
"""A value written as it is; anything else (a space, a newline, a quote) is written as a JSON string, so
that a value a client chose (the model's name, the path) can never start a line of its own."""


def _value(value: Any) -> str:
    if not isinstance(value, str):  # numbers, null, the logged messages: JSON, which has no line breaks
        return json.dumps(value, ensure_ascii=True)
    return value if _PLAIN.fullmatch(value) else json.dumps(value, ensure_ascii=True)


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "moa_request", None)
        if fields is None:
            return super().format(record)
        head = f"{self.formatTime(record)} {fields['method']} {_value(fields['path'])}"
        rest = " ".join(f"{k}={_value(v)}" for k, v in fields.items() if k not in ("method", "path"))
        return f"{head} {rest}"


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "moa_request", None) or {"message": record.getMessage()}
        return json.dumps({"time": self.formatTime(record), **fields}, ensure_ascii=False)


def configure(log_format: Literal["text", "json"] = "text") -> None:
    """Write the request lines to stderr in ``log_format``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Json() if log_format == "json" else _Text())
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
