"""Named MoA configurations, as plain data. Provider model names change: update them here."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_moa.errors import MoAConfigError
from langchain_moa.extras import install_command
from langchain_moa.options import MoAOptions

__all__ = ["PRESETS", "Preset", "get_preset", "overridden", "preset_fields"]


@dataclass(frozen=True)
class Preset:
    """A MoA configuration: the arguments of ``MoAChatModel`` plus what it needs to run."""

    name: str
    description: str
    proposers: tuple[str, ...]
    aggregator: str
    layers: int
    temperature: float | None = 0.7
    max_tokens: int | None = 512
    aggregation: str = "synthesize"
    """How the aggregator answers (see ``langchain_moa.aggregation``)."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Any other ``MoAOptions`` field (e.g. ``{"staircase": 16}``)."""
    needs: str = "TOGETHER_API_KEY"
    """What must be set up first: an environment variable or a ``pip install`` command."""

    def model_fields(self) -> dict[str, Any]:
        """``MoAOptions`` fields (the keyword arguments of ``MoAChatModel``)."""
        return {
            "proposers": list(self.proposers),
            "aggregator": self.aggregator,
            "layers": self.layers,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "aggregation": self.aggregation,
            **self.options,
        }


_LOCAL_05B = "local:qwen2.5-coder-0.5b"
_LOCAL_15B = "local:qwen2.5-coder-1.5b"
# The paper's six open proposers (Wang et al. 2024, section 3.1), by their Together names.
_PAPER_PROPOSERS = (
    "Qwen/Qwen1.5-110B-Chat",
    "Qwen/Qwen1.5-72B-Chat",
    "microsoft/WizardLM-2-8x22B",
    "meta-llama/Llama-3-70b-chat-hf",
    "mistralai/Mixtral-8x22B-Instruct-v0.1",
    "databricks/dbrx-instruct",
)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="local",
            description="Self-MoA on the embedded Qwen2.5-Coder-0.5B: 3 samples at temperature 0.7, "
            "the same model aggregating. Offline, no key; tens of seconds on 2 cores.",
            proposers=(_LOCAL_05B,) * 3,
            aggregator=_LOCAL_05B,
            layers=2,
            max_tokens=256,
            needs=f"{install_command('local')} and moa weights install",
        ),
        Preset(
            name="local-1.5b",
            description="Self-MoA on the embedded Qwen2.5-Coder-1.5B: better answers, about twice as slow.",
            proposers=(_LOCAL_15B,) * 3,
            aggregator=_LOCAL_15B,
            layers=2,
            max_tokens=384,
            needs=f"{install_command('local')} and moa weights install qwen2.5-coder-1.5b",
        ),
        Preset(
            name="local-1.5b-cascade",
            description="Self-MoA on the embedded 1.5B that spends only where samples disagree: two "
            "samples first, the answer they agree on, else a third and the model's most consistent answer "
            "(no aggregator call). About half the tokens of local-1.5b (benchmarks/QUALITY.md).",
            proposers=(_LOCAL_15B,) * 3,
            aggregator=_LOCAL_15B,
            layers=2,
            max_tokens=384,
            aggregation="confidence",
            options={"cascade": 2, "early_exit": 1.0},
            needs=f"{install_command('local')} and moa weights install qwen2.5-coder-1.5b",
        ),
        Preset(
            name="together",
            description="The reference implementation's quickstart: 4 open models, 2 layers, on Together.",
            proposers=(
                "meta-llama/Llama-3.3-70B-Instruct-Turbo",
                "Qwen/Qwen2.5-72B-Instruct-Turbo",
                "Qwen/Qwen2.5-Coder-32B-Instruct",
                "microsoft/WizardLM-2-8x22B",
            ),
            aggregator="Qwen/Qwen2.5-72B-Instruct-Turbo",
            layers=2,
        ),
        Preset(
            name="together-moa",
            description="The paper's MoA: 6 open proposers, 3 layers, Qwen1.5-110B-Chat aggregating.",
            proposers=_PAPER_PROPOSERS,
            aggregator="Qwen/Qwen1.5-110B-Chat",
            layers=3,
            max_tokens=2048,
        ),
        Preset(
            name="together-moa-lite",
            description="The paper's MoA-Lite: 6 open proposers, 2 layers, Qwen1.5-72B-Chat aggregating.",
            proposers=_PAPER_PROPOSERS,
            aggregator="Qwen/Qwen1.5-72B-Chat",
            layers=2,
            max_tokens=2048,
        ),
        Preset(
            name="self-moa",
            description="Self-MoA (Li et al. 2025): 6 samples of WizardLM-2-8x22B, aggregated by itself.",
            proposers=("microsoft/WizardLM-2-8x22B",) * 6,
            aggregator="microsoft/WizardLM-2-8x22B",
            layers=2,
            max_tokens=2048,
        ),
    )
}
"""Every preset, by name."""


def get_preset(name: str) -> Preset:
    """The preset called ``name``; an unknown name is an error with a suggestion."""
    if preset := PRESETS.get(name):
        return preset
    close = difflib.get_close_matches(name, PRESETS, n=1)
    hint = f" — did you mean {close[0]!r}?" if close else ""
    msg = f"unknown preset {name!r}{hint} (presets: {', '.join(PRESETS)})"
    raise MoAConfigError(msg)


def preset_fields(preset: str, **overrides: Any) -> dict[str, Any]:
    """``MoAOptions`` fields of ``preset``, with every override that is not ``None`` applied.

    ``proposers`` may be a comma-separated string (as the command line gives it). The result is
    checked like any ``MoAOptions`` (an unknown option or a bad value raises ``MoAConfigError``).

    Examples:
        >>> preset_fields("together", layers=3, temperature=None)["layers"]
        3
    """
    return overridden(get_preset(preset).model_fields(), **overrides)


def overridden(fields: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """``fields`` (a preset's, or a configuration file's) with every override that is not ``None``
    applied, checked by ``MoAOptions``; ``proposers`` may be comma-separated (as the command line
    gives it)."""
    if isinstance(overrides.get("proposers"), str):
        overrides["proposers"] = [p.strip() for p in overrides["proposers"].split(",") if p.strip()]
    fields = {**fields, **{k: v for k, v in overrides.items() if v is not None}}
    MoAOptions(**fields)  # checked without creating any model (a file's models are made already)
    return fields
