"""``moa serve``: the configured MoA (and the presets) behind an OpenAI-compatible API."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from langchain_moa.cli.ask import build_model
from langchain_moa.cli.options import ModelChoice, model_options
from langchain_moa.cli.output import consoles, fail, plain
from langchain_moa.errors import MoAError

__all__ = ["serve"]

API_KEY_VARIABLE = "MOA_SERVE_API_KEY"
SIGNING_KEY_VARIABLE = "MOA_SERVE_SIGNING_KEY"


@model_options
def serve(
    choice: ModelChoice,
    host: Annotated[
        str, typer.Option(help="Address to listen on; 0.0.0.0 exposes it to your network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    name: Annotated[
        str | None, typer.Option(help="The model name clients ask for (default: made of the configuration).")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar=API_KEY_VARIABLE,
            show_envvar=True,
            help="Require this key as 'Authorization: Bearer KEY' (or set MOA_SERVE_API_KEY).",
        ),
    ] = None,
    max_body_mb: Annotated[
        float, typer.Option(min=0.001, help="Refuse request bodies larger than this (413).")
    ] = 4.0,
    body_timeout: Annotated[
        float, typer.Option(min=0.001, help="Seconds a client may take to send its body (408 after).")
    ] = 30.0,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            help="A web origin allowed to call the server from a page (repeat for more; none: no CORS)."
        ),
    ] = None,
    log_format: Annotated[
        str, typer.Option(help="One line per request on stderr: text (key=value) or json.")
    ] = "text",
    log_content: Annotated[
        bool, typer.Option("--log-content", help="Also log each request's messages and answer.")
    ] = False,
) -> None:
    """Serve MoA over OpenAI's chat-completions API (/v1/chat/completions, /v1/models)."""
    from langchain_moa.server import require_serve_extra

    out, err = consoles()
    try:
        require_serve_extra()
    except MoAError as error:
        raise fail(err, error) from None
    import uvicorn

    from langchain_moa.models import unavailable_reason
    from langchain_moa.presets import PRESETS, preset_fields
    from langchain_moa.server.app import Limits, ModelRegistry, create_app
    from langchain_moa.server.logs import configure as configure_logging

    served = name or choice.configuration_name()
    configured = build_model(choice, err)  # built now: a bad option fails before the server starts
    factories: dict[str, Any] = {served: lambda: configured}
    for preset in PRESETS.values():  # the presets that can run here too, each built on its first request
        models = [*preset.proposers, preset.aggregator]
        if not any(unavailable_reason(m) for m in models):
            factories.setdefault(f"moa-{preset.name}", lambda p=preset.name: _preset_model(p, preset_fields))
    plain(err, f"Serving {', '.join(factories)} at http://{host}:{port}/v1"
               f"{' (key required)' if api_key else ''}; Ctrl-C stops.")  # fmt: skip
    if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        plain(err, f"Warning: {host} is reachable from other machines and no --api-key is set.")
    if log_format not in ("text", "json"):
        raise fail(err, ValueError(f"--log-format must be text or json, got {log_format!r}"), code=2)
    configure_logging(log_format)  # type: ignore[arg-type]
    limits = Limits(
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        body_timeout=body_timeout,
        cors_origins=tuple(cors_origin or ()),
        log_content=log_content,
    )
    # Replicas behind one address must sign carried proposals with one key (else each its own).
    signing_key = os.environ.get(SIGNING_KEY_VARIABLE, "").encode() or None
    app = create_app(ModelRegistry(factories), api_key=api_key, limits=limits, signing_key=signing_key)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    del out


def _preset_model(preset: str, preset_fields: Any) -> Any:
    from langchain_moa.chat_models import MoAChatModel

    return MoAChatModel(**preset_fields(preset))
