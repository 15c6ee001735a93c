"""The page of ``moa serve`` at ``/``: a chat where each proposal writes in a panel of its own and the
answer forms beneath them (``web/``: plain HTML, CSS and JavaScript, with marked and DOMPurify shipped
in the package; no CDN, no build step).

The page reads ``POST /v1/moa/events`` (``moa_api``). It holds no secret: with ``--api-key`` it asks
for the key and keeps it in the tab's session storage, sent as a bearer header (never in a URL). Its
Content-Security-Policy allows scripts, styles and connections of this server alone, and no framing.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from langchain_moa.server.openai_format import error_body

__all__ = ["CONTENT_SECURITY_POLICY", "PAGE_FILES", "add_page"]

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""No inline script or style, nothing from elsewhere (a model's ``<img src=...>`` loads nothing)."""

PAGE_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
    "vendor/marked.js": "text/javascript; charset=utf-8",
    "vendor/purify.js": "text/javascript; charset=utf-8",
}
"""Every file the page is made of, and its type: nothing else under ``web/`` is served."""

_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def add_page(app: FastAPI) -> None:
    """Serve the page at ``/`` and its files under ``/page/``."""
    web = files("langchain_moa.server") / "web"

    def page_file(name: str) -> Response:
        return Response(web.joinpath(name).read_bytes(), media_type=PAGE_FILES[name], headers=_HEADERS)

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return page_file("index.html")

    @app.get("/page/{name:path}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name not in PAGE_FILES or name == "index.html":
            body = error_body(f"no page file {name[:100]!r}", kind="invalid_request_error")
            return JSONResponse(body, status_code=404)
        return page_file(name)
