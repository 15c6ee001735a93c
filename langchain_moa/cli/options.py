"""The model options every ``moa`` command shares, declared once (help text from ``MoAOptions``).

A command decorated with ``@model_options`` gets ``--preset``, the reference implementation's
``--aggregator``, ``--reference-models``, ``--temperature``, ``--max-tokens``, ``--rounds`` and
``--num-proc``, and one flag for every other ``MoAOptions`` field (``--staircase``,
``--proposal-quorum``, ``--layer-deadline``, ...), generated from the options model with its
documentation as help; it receives them as one ``ModelChoice``. The values are checked by
``MoAOptions`` itself, so the command line refuses exactly what Python refuses, with the same message.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from langchain_moa.aggregation import STRATEGIES
from langchain_moa.errors import MoAConfigError
from langchain_moa.options import MoAOptions, describe, option_names
from langchain_moa.presets import overridden, preset_fields

__all__ = ["ModelChoice", "model_options"]

_F = TypeVar("_F", bound=Callable[..., Any])

_DEFAULT_NOTICE = (
    "No TOGETHER_API_KEY set: {what} from the local preset (Self-MoA on an embedded 0.5B model, offline)."
)


@dataclass
class ModelChoice:
    """The model options of one command line."""

    preset: Annotated[
        str | None,
        typer.Option(
            help="Named configuration (see `moa presets`). "
            "Default: together with TOGETHER_API_KEY, else local."
        ),
    ] = None
    aggregator: Annotated[
        str | None, typer.Option("--aggregator", "--model", help=describe("aggregator"))
    ] = None
    reference_models: Annotated[
        str | None,
        typer.Option(
            "--reference-models", help="Proposer models, comma separated (provider:model or Together names)."
        ),
    ] = None
    temperature: Annotated[float | None, typer.Option(help=describe("temperature"))] = None
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", help=describe("max_tokens"))] = None
    rounds: Annotated[
        int | None, typer.Option(help="Proposer layers (= layers - 1), as in the reference implementation.")
    ] = None
    layers: Annotated[int | None, typer.Option(help=describe("layers"))] = None
    num_proc: Annotated[int | None, typer.Option("--num-proc", help=describe("max_concurrency"))] = None
    aggregation: Annotated[
        str | None,
        typer.Option(help=f"How the aggregator answers: {', '.join(STRATEGIES)} (default: synthesize)."),
    ] = None
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="A TOML file describing the whole MoA (each model's endpoint, every option)."
        ),
    ] = None
    options: dict[str, Any] = field(default_factory=dict)
    """Every other ``MoAOptions`` field given (``--staircase``, ``--proposal-quorum``, ...)."""

    def preset_name(self) -> str:
        """The preset given, else ``together`` with a Together key, else ``local``."""
        if self.preset:
            return self.preset
        return "together" if os.environ.get("TOGETHER_API_KEY") else "local"

    def notices(self) -> list[str]:
        """What the user should know about the choice made for them (the local default)."""
        if self.preset or self.config or os.environ.get("TOGETHER_API_KEY"):
            return []
        given = {"proposers": self.reference_models, "aggregator": self.aggregator}
        from_preset = [name for name, value in given.items() if not value]
        # Said only when the local preset's models will really run.
        what = " and ".join(f"the {name}" for name in from_preset) + (
            " comes" if from_preset == ["aggregator"] else " come"
        )
        return [_DEFAULT_NOTICE.format(what=what)] if from_preset else []

    def configuration_name(self) -> str:
        """A name for what runs, as benchmarks' leaderboards show it: ``moa-<preset>`` when the preset's
        models run, else made of them, e.g. ``moa-qwen2.5-72b-instruct-turbo-4p-2l-1a2b3c`` (the
        aggregator, 4 proposers, 2 layers, and a digest of the models and sampling, so that two
        configurations never share a name, nor a resumable answer file)."""
        from langchain_moa.models import split_model_string
        from langchain_moa.presets import get_preset

        if self.config is not None:  # named after its file; its models are instances, made from it
            return f"moa-{self.config.stem}"

        fields, preset = self.model_fields(), get_preset(self.preset_name())
        if (fields["proposers"], fields["aggregator"], fields["layers"], fields["aggregation"]) == (
            list(preset.proposers),
            preset.aggregator,
            preset.layers,
            preset.aggregation,
        ):
            return f"moa-{preset.name}"
        aggregator = split_model_string(fields["aggregator"])[1].rsplit("/", 1)[-1].lower().replace(":", "-")
        what = [fields.get(k) for k in ("proposers", "aggregator", "layers", "temperature", "max_tokens")]
        if fields["aggregation"] != "synthesize":  # the paper's own way adds nothing to the name
            what.append(fields["aggregation"])
        digest = hashlib.sha256(json.dumps(what).encode()).hexdigest()[:6]
        return f"moa-{aggregator}-{len(fields['proposers'])}p-{fields['layers']}l-{digest}"

    def model_fields(self) -> dict[str, Any]:
        """``MoAOptions`` fields: the preset's, overridden by every option given.

        Raises:
            typer.BadParameter: a value ``MoAOptions`` refuses (the message names the flag too).
        """
        if self.rounds is not None and self.layers is not None and self.layers != self.rounds + 1:
            msg = (
                f"--rounds {self.rounds} and --layers {self.layers} disagree (layers = rounds + 1); give one"
            )
            raise typer.BadParameter(msg)
        if self.rounds is not None and self.rounds < 0:
            raise typer.BadParameter(f"--rounds must be >= 0, got {self.rounds}")
        overrides = {
            "proposers": self.reference_models,
            "aggregator": self.aggregator,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "layers": self.layers if self.rounds is None else self.rounds + 1,
            "max_concurrency": self.num_proc,
            "aggregation": self.aggregation,
            **self.options,
        }
        if self.config is not None and self.preset:
            raise typer.BadParameter("--config and --preset both describe the MoA: give one")
        try:
            if self.config is not None:
                from langchain_moa.config_file import load_config

                return overridden(load_config(self.config), **overrides)
            return preset_fields(self.preset_name(), **overrides)
        except MoAConfigError as error:
            flag = next((f for name, f in _FLAGS.items() if str(error).startswith(name + " ")), None)
            if flag is None:
                raise
            raise typer.BadParameter(f"{flag}: {error}") from None


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


_FLAGS = {
    "proposers": "--reference-models",
    "aggregator": "--aggregator",
    "temperature": "--temperature",
    "max_tokens": "--max-tokens",
    "layers": "--layers/--rounds",
    "max_concurrency": "--num-proc",
    "aggregation": "--aggregation",
}
_PYTHON_ONLY = ("agreement_embeddings",)
"""Options whose value is an object (an embedding model): given in Python, never on a command line."""
_GENERATED = [name for name in option_names() if name not in _FLAGS and name not in _PYTHON_ONLY]
"""The options with a flag of their own name, made from ``MoAOptions``."""
_FLAGS.update({name: _flag(name) for name in _GENERATED})
_SHARED = [f for f in fields(ModelChoice) if f.name != "options"]
"""The flags every command shares (``options`` holds the generated ones)."""


def _fanout(value: str | None) -> str | int | None:
    return int(value) if value is not None and value.isdigit() else value


def _json_object(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"not JSON: {error.msg} (e.g. '{{\"model\": 0.5}}')") from None


def _generated_option(name: str) -> inspect.Parameter:
    """A keyword parameter for typer: ``--<name>``, typed from the option, its documentation as help."""
    annotation = MoAOptions.model_fields[name].annotation
    kinds = set(typing.get_args(annotation)) or {annotation}
    parse: dict[str, Any] = {}
    if any(typing.get_origin(k) is typing.Literal for k in kinds):  # "turn", "call" or a number
        kind: Any = str
        parse = {"parser": _fanout, "metavar": "call|turn|N"}
    elif any(typing.get_origin(k) is dict for k in kinds):  # a mapping, written as JSON
        kind = str
        parse = {"parser": _json_object, "metavar": "JSON"}
    else:
        kind = next((k for k in (int, float) if k in kinds), str)
    hint = Annotated[kind | None, typer.Option(_flag(name), help=describe(name), **parse)]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=hint)


def model_options(command: _F | None = None, *, exclude: tuple[str, ...] = ()) -> Any:
    """Give a command the shared model options (all but ``exclude``); it receives them as
    ``choice: ModelChoice``. Use as ``@model_options`` or ``@model_options(exclude=(...))``."""
    if command is None:
        return functools.partial(model_options, exclude=exclude)
    signature = inspect.signature(command)
    hints = typing.get_type_hints(command, include_extras=True)
    own = [p.replace(annotation=hints[p.name]) for p in signature.parameters.values() if p.name != "choice"]
    taken = [f for f in _SHARED if f.name not in exclude]
    shared_hints = typing.get_type_hints(ModelChoice, include_extras=True)
    keyword = inspect.Parameter.KEYWORD_ONLY
    shared = [
        inspect.Parameter(f.name, keyword, default=f.default, annotation=shared_hints[f.name]) for f in taken
    ]
    generated = [_generated_option(name) for name in _GENERATED if name not in exclude]
    shared += generated

    @functools.wraps(command)
    def run(**values: Any) -> Any:
        choice = ModelChoice(**{f.name: values.pop(f.name) for f in taken})
        choice.options = {p.name: v for p in generated if (v := values.pop(p.name)) is not None}
        return command(choice=choice, **values)

    run.__signature__ = signature.replace(parameters=[*own, *shared])  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in [*own, *shared]}
    del run.__wrapped__  # typer must read the new signature, not the command's
    return run
