"""What one request may cost the server before any model runs: the body read within bounds of size
and time, from a page of an allowed origin and host; a request refused with its status."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.requests import Request

__all__ = ["LOOPBACK_HOSTS", "Limits", "Refused", "read_body"]

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
"""The names of this machine that no other machine can make a browser use."""


@dataclass(frozen=True)
class Limits:
    """What one request may cost the server before any model runs, and who may call it from a page."""

    max_body_bytes: int = 4 * 1024 * 1024
    """Larger bodies are refused with 413 before they are read whole."""
    body_timeout: float = 30.0
    """Seconds a client may take to send its body; a slower one gets 408."""
    cors_origins: tuple[str, ...] = ()
    """Web origins allowed to call the server from a page (none: no CORS headers at all)."""
    log_content: bool = False
    """Log each request's messages and answer too (never by default)."""
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    """The names a request's ``Host`` may give (a port aside): a page on another name that resolves
    to this server (DNS rebinding) is refused. ``"*"`` allows any; ``"*.example.com"`` its subdomains."""


class Refused(Exception):
    """A request refused before it ran: its status and OpenAI error."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.param, self.code = status, param, code


async def read_body(request: Request, limits: Limits) -> bytes:
    """The body, if it is JSON, at most ``max_body_bytes`` and sent within ``body_timeout``
    (``Refused`` otherwise; Starlette's ``ClientDisconnect`` if the client leaves while sending it)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":  # a web page cannot send this without the CORS preflight
        raise Refused(415, f"Content-Type must be application/json, got {media_type or 'none'!r}",
                       code="unsupported_media_type")  # fmt: skip
    too_large = Refused(413, f"the body is larger than the server's limit of {limits.max_body_bytes} bytes",
                         code="request_too_large")  # fmt: skip
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise too_large
    body = bytearray()
    try:
        async with asyncio.timeout(limits.body_timeout):
            async for part in request.stream():
                body += part
                if len(body) > limits.max_body_bytes:
                    raise too_large
    except TimeoutError:
        raise Refused(408, f"the body did not arrive within {limits.body_timeout}s",
                       code="request_timeout") from None  # fmt: skip
    return bytes(body)
