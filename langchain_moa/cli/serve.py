"""``moa serve``: the configured MoA (and the presets) behind an OpenAI-compatible API."""

from __future__ import annotations

import json
import os
import secrets
import socket
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from langchain_moa.cli.ask import build_model
from langchain_moa.cli.options import ModelChoice, model_options
from langchain_moa.cli.output import consoles, fail, plain
from langchain_moa.errors import MoAError

__all__ = ["serve"]

API_KEY_VARIABLE = "MOA_SERVE_API_KEY"
SIGNING_KEY_VARIABLE = "MOA_SERVE_SIGNING_KEY"
_SETTINGS_VARIABLE = "MOA_SERVE_WORKER_SETTINGS"


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
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            help="A name clients may reach the server by (Host header), besides localhost, 127.0.0.1, "
            "::1 and --host; repeat for more, '*.example.com' for subdomains, '*' for any. Other names "
            "are refused (a defence against DNS rebinding).",
        ),
    ] = None,
    log_format: Annotated[
        str, typer.Option(help="One line per request on stderr: text (key=value) or json.")
    ] = "text",
    log_content: Annotated[
        bool, typer.Option("--log-content", help="Also log each request's messages and answer.")
    ] = False,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes behind the one port (each runs its own MoA).")
    ] = 1,
) -> None:
    """Serve MoA over OpenAI's chat-completions API (/v1/chat/completions, /v1/models), with a page
    at / where the proposals write side by side and the answer forms from them."""
    from langchain_moa.server import require_serve_extra

    _, err = consoles()
    try:
        require_serve_extra()
    except MoAError as error:
        raise fail(err, error) from None
    import uvicorn

    if log_format not in ("text", "json"):
        raise fail(err, ValueError(f"--log-format must be text or json, got {log_format!r}"), code=2)
    settings = {
        "choice": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(choice).items()},
        "name": name or choice.configuration_name(),
        "max_body_bytes": int(max_body_mb * 1024 * 1024),
        "body_timeout": body_timeout,
        "cors_origins": list(cors_origin or ()),
        "allowed_hosts": _allowed_hosts(host, allowed_host or []),
        "log_content": log_content,
        "log_format": log_format,
    }
    configured = build_model(choice, err)  # built now: a bad option fails before the server starts
    app = _app(settings, configured, api_key)
    plain(err, f"Serving {', '.join(app.state.registry.names())} at http://{host}:{port}/v1"
               f"{' (key required)' if api_key else ''}, the page at http://{host}:{port}/"
               f"{f' with {workers} worker processes' if workers > 1 else ''}; Ctrl-C stops.")  # fmt: skip
    if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        plain(err, f"Warning: {host} is reachable from other machines and no --api-key is set.")
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level="warning")
        return
    # Each worker process builds the same app from these settings; the key travels in the environment
    # (never on a command line), and the workers sign carried proposals with one shared key.
    os.environ[_SETTINGS_VARIABLE] = json.dumps(settings)
    if api_key:
        os.environ[API_KEY_VARIABLE] = api_key
    os.environ.setdefault(SIGNING_KEY_VARIABLE, secrets.token_hex(32))
    uvicorn.run(f"{__name__}:worker_app", factory=True, workers=workers, host=host, port=port,
                log_level="warning")  # fmt: skip


def worker_app() -> Any:
    """The app of one ``moa serve --workers N`` worker process (uvicorn calls this factory in each)."""
    from langchain_moa.cli.options import ModelChoice

    settings = json.loads(os.environ[_SETTINGS_VARIABLE])
    fields = settings["choice"]
    if fields.get("config"):
        fields["config"] = Path(fields["config"])
    choice = ModelChoice(**{k: v for k, v in fields.items() if k != "options"})
    choice.options = fields.get("options") or {}
    _, err = consoles()
    return _app(settings, build_model(choice, err, quiet=True), os.environ.get(API_KEY_VARIABLE))


def _app(settings: dict[str, Any], configured: Any, api_key: str | None) -> Any:
    """The served app: the configured MoA under its name, and every preset that can run here."""
    from langchain_moa.models import unavailable_reason
    from langchain_moa.presets import PRESETS, preset_fields
    from langchain_moa.server.app import create_app
    from langchain_moa.server.limits import Limits
    from langchain_moa.server.logs import configure as configure_logging
    from langchain_moa.server.registry import ModelRegistry

    factories: dict[str, Any] = {settings["name"]: lambda: configured}
    # The presets that can run here too, each built on its first request; a configuration file says
    # everything that runs, so with one only its MoA is served.
    for preset in () if settings["choice"].get("config") else PRESETS.values():
        models = [*preset.proposers, preset.aggregator]
        if not any(unavailable_reason(m) for m in models):
            factories.setdefault(f"moa-{preset.name}", lambda p=preset.name: _preset_model(p, preset_fields))
    configure_logging(settings["log_format"])
    limits = Limits(
        max_body_bytes=settings["max_body_bytes"],
        body_timeout=settings["body_timeout"],
        cors_origins=tuple(settings["cors_origins"]),
        log_content=settings["log_content"],
        allowed_hosts=tuple(settings["allowed_hosts"]),
    )
    # Replicas behind one address must sign carried proposals with one key (else each its own).
    signing_key = os.environ.get(SIGNING_KEY_VARIABLE, "").encode() or None
    registry = ModelRegistry(factories)
    app = create_app(registry, api_key=api_key, limits=limits, signing_key=signing_key)
    app.state.registry = registry
    return app


def _allowed_hosts(host: str, named: list[str]) -> list[str]:
    """The names the server answers to: loopback, the address it listens on, and those the operator
    named. Listening on every address (0.0.0.0, ::), it also answers to this machine's own name."""
    from langchain_moa.server.limits import LOOPBACK_HOSTS

    own = [socket.gethostname(), socket.getfqdn()] if host in ("0.0.0.0", "::", "") else [host]
    return list(dict.fromkeys([*LOOPBACK_HOSTS, *own, *named]))


def _preset_model(preset: str, preset_fields: Any) -> Any:
    from langchain_moa.chat_models import MoAChatModel

    return MoAChatModel(**preset_fields(preset))
