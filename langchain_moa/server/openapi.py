"""The server's OpenAPI document: the chat endpoint's request model and OpenAI's error shape, for API
tools (schemathesis, generated clients)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from langchain_moa.server.moa_api import RunRequest
from langchain_moa.server.requests import ChatRequest

__all__ = ["CHAT_OPENAPI", "ERROR_RESPONSE", "EVENTS_OPENAPI", "openapi"]


ERROR_RESPONSE: dict[str, Any] = {
    "description": "An error in OpenAI's shape; a bad field is named in error.param.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OpenAIError"}}},
}

CHAT_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatRequest"}}},
    },
    "responses": {
        "200": {
            "description": "The answer: a chat.completion, or server-sent chunks with stream=true.",
            "content": {"application/json": {}, "text/event-stream": {}},
        },
        "499": {"description": "The client left before the answer (nothing is sent)."},
        "default": ERROR_RESPONSE,
    },
}
"""The chat endpoint reads its body itself (within the server's limits), so FastAPI cannot infer the
schema: it is ``ChatRequest``'s, declared here for API tools (schemathesis, generated clients)."""

EVENTS_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RunRequest"}}},
    },
    "responses": {
        "200": {
            "description": "The run's events as server-sent events (langchain_moa.server.moa_api).",
            "content": {"text/event-stream": {}},
        },
        "499": {"description": "The client left before the run started (nothing is sent)."},
        "default": ERROR_RESPONSE,
    },
}
"""The events endpoint's body: ``RunRequest``, a chat request that may continue a thread."""


_NULLABLE_STRING = {"type": ["string", "null"]}
_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string", "minLength": 1},
                "type": {"type": "string"},
                "param": _NULLABLE_STRING,
                "code": _NULLABLE_STRING,
            },
        }
    },
}


def openapi(app: FastAPI, models: list[str]) -> dict[str, Any]:
    """The OpenAPI document, with ``ChatRequest``'s schema and the models it refers to; ``model`` is
    one of the ``models`` served (any other is a 404)."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for request in (ChatRequest, RunRequest):
            body = request.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(body.pop("$defs", {}))
            body["properties"]["model"] = {"type": "string", "enum": models, "title": "Model"}
            components[request.__name__] = body
        components["OpenAIError"] = _ERROR_SCHEMA
        app.openapi_schema = schema
    return app.openapi_schema
