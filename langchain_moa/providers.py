"""Providers beyond ``init_chat_model``'s, each with what its models can do.

A backend registers itself under the entry-point group ``langchain_moa.providers`` with a ``Provider``;
this package's embedded llama.cpp backend is one (``langchain_moa.local``, registered in
``pyproject.toml``). The core never imports a backend: it finds one by the provider name of a model
string (``"local:qwen2.5-coder-0.5b"``), and asks the providers what a chat model can do.

Example (a package's ``pyproject.toml``)::

    [project.entry-points."langchain_moa.providers"]
    mine = "my_package.moa:PROVIDER"
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from langchain_core.language_models import BaseChatModel

__all__ = ["CONTINUES_ASSISTANT_MESSAGE", "ENTRY_POINTS", "Provider", "can", "registered"]

ENTRY_POINTS = "langchain_moa.providers"

CONTINUES_ASSISTANT_MESSAGE = "continues_assistant_message"
"""Given a conversation that ends in an assistant message, the model continues that message instead of
starting a new one (llama.cpp's server does; OpenAI's chat API does not): staircase's ``"auto"``
layout prefills with such an aggregator."""


@dataclass(frozen=True)
class Provider:
    """A source of chat models named ``"<name>:<model>"``."""

    name: str
    make: Callable[[str], BaseChatModel]
    """The chat model of a model name (the part after ``"<name>:"``); raises ``MoAConfigError``."""
    unavailable: Callable[[str], str | None]
    """Why a model cannot run here (``"needs pip install ..."``), without making it; ``None``: it can."""
    serves: Callable[[Any], bool]
    """Whether a chat model is one of this provider's (for its capabilities)."""
    capabilities: frozenset[str] = frozenset()
    """What its models can do that a chat API does not promise (``CONTINUES_ASSISTANT_MESSAGE``)."""
    slow_to_make: bool = False
    """Making a model takes seconds (it loads weights): a MoA makes such models after every other, so
    that another model's missing key fails first."""


@functools.cache
def registered() -> dict[str, Provider]:
    """The registered providers by name (read once per process)."""
    found: dict[str, Provider] = {}
    for entry in entry_points(group=ENTRY_POINTS):
        provider = entry.load()
        if not isinstance(provider, Provider):
            kind = type(provider).__name__
            msg = f"entry point {entry.value!r} of {ENTRY_POINTS!r} is a {kind}, not a Provider"
            raise TypeError(msg)
        found[provider.name] = provider
    return found


def can(model: Any, capability: str) -> bool:
    """Whether ``model``'s provider says it has ``capability``."""
    return any(capability in p.capabilities and p.serves(model) for p in registered().values())
