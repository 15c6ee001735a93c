"""``moa serve``: the configured MoA (and the presets) behind an OpenAI-compatible API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from langchain_moa.cli.ask import build_model
from langchain_moa.cli.options import ModelChoice, model_options
from langchain_moa.cli.output import consoles, fail, plain
from langchain_moa.errors import MoAError

__all__ = ["serve"]

API_KEY_VARIABLE = "MOA_SERVE_API_KEY"


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
    from langchain_moa.server.app import ModelRegistry, create_app

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
    app = create_app(ModelRegistry(factories), api_key=api_key)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    del out


def _preset_model(preset: str, preset_fields: Any) -> Any:
    from langchain_moa.chat_models import MoAChatModel

    return MoAChatModel(**preset_fields(preset))
