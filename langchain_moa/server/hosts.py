"""Where a request may come from: a ``Host`` that is one of the server's names (DNS rebinding), and
for the MoA's own endpoints, a page of the server's own origin or of one the operator allowed."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from langchain_moa.server.openai_format import error_body

__all__ = ["HostCheck", "foreign_page"]


class HostCheck:
    """Refuses a request whose ``Host`` is not one of the server's own names (``Limits.allowed_hosts``),
    in OpenAI's error shape: a web page on a name rebound to this machine's address (DNS rebinding)
    can neither use the server nor read its answers. A plain ASGI middleware: a streaming answer still
    hears its client leave."""

    def __init__(self, app: ASGIApp, allowed: tuple[str, ...]) -> None:
        self.app = app
        self.any = "*" in allowed
        self.names = {name.lower().strip("[]") for name in allowed if not name.startswith("*")}
        self.suffixes = tuple(name[1:].lower() for name in allowed if name.startswith("*."))

    def allows(self, host: str) -> bool:
        name = host.lower()
        if name.startswith("["):  # an IPv6 address, with or without a port
            name = name[1:].partition("]")[0]
        elif name.count(":") == 1:  # a name or an IPv4 address with a port
            name = name.partition(":")[0]
        return self.any or name in self.names or name.endswith(self.suffixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = Headers(scope=scope).get("host", "")
            if not self.allows(host):
                message = (
                    f"the Host {host[:100]!r} is not a name of this server; the operator can allow it "
                    "with `moa serve --allowed-host NAME`"
                )
                body = error_body(message, kind="invalid_request_error", code="host_not_allowed")
                response = JSONResponse(body, status_code=400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def foreign_page(headers: Headers, allowed_origins: tuple[str, ...]) -> str | None:
    """Why a request comes from a web page of another origin (``None``: from the server's own page, an
    origin the operator allowed, or no page at all). Browsers say where a request comes from
    (``Origin``, ``Sec-Fetch-Site``) and a page cannot change it."""
    origin = headers.get("origin")
    if origin is None or origin == "null":
        if headers.get("sec-fetch-site") in ("cross-site", "same-site") or origin == "null":
            return "a page of another origin may not use this endpoint"
        return None
    if urlsplit(origin).netloc.lower() == headers.get("host", "").lower() or origin in allowed_origins:
        return None
    allow = "the operator can allow it with --cors-origin"
    return f"a page of {origin[:100]!r} may not use this endpoint ({allow})"
