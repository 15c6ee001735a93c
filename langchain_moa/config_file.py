"""A MoA described completely in a TOML file: each model on its own endpoint, and every option.

::

    layers = 2
    staircase = 16                      # any MoAOptions field, checked as in Python

    [[proposers]]
    provider = "openai"                 # any provider init_chat_model knows, or "local"
    model = "qwen2.5-72b-instruct"
    base_url = "http://gpu-a:8000/v1"   # an OpenAI-compatible server of its own (vLLM, LiteLLM, ...)
    api_key_env = "GPU_A_KEY"           # the NAME of the variable holding the key, never the key
    streaming = true
    timeout = 60

    [aggregator]
    provider = "openai"
    model = "gpt-4o-mini"
    api_key_env = "OPENAI_API_KEY"

A model may also be a ``"provider:model"`` string. ``MoAChatModel.from_config(path)``, ``moa --config
FILE``, ``moa serve --config FILE`` and the served LangGraph graph (``MOA_CONFIG``) read it. Every error
names the file, the line and the field, before any model is created: an unknown field, a key written
into the file, a key variable that is not set, a value the options refuse.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError

from langchain_moa import providers
from langchain_moa.errors import MoAConfigError
from langchain_moa.models import resolve_chat_model
from langchain_moa.options import MoAOptions, option_names

__all__ = ["ModelEntry", "load_config"]

_SECRETS = re.compile(r"^(api_?key|.*token|.*secret|.*password)$", re.IGNORECASE)
"""Fields that would hold a key (``api_key_env`` holds a variable's name, and is not one of them)."""


class ModelEntry(BaseModel):
    """One model of the file: where it runs and how it is called."""

    model_config = ConfigDict(extra="forbid")

    provider: StrictStr
    """A provider ``init_chat_model`` knows (``openai``, ``anthropic``, ``together``, ...) or ``local``."""
    model: StrictStr
    """The provider's model name (for ``local``: a bundled model or a ``.gguf`` path)."""
    base_url: StrictStr | None = None
    """The endpoint, for a model behind its own server (vLLM, a LiteLLM proxy, Ollama, ...)."""
    api_key_env: StrictStr | None = None
    """The name of the environment variable holding the key (the key itself never goes in the file)."""
    streaming: StrictBool | None = None
    """Whether the client streams every call (some gateways only stream)."""
    stream_usage: StrictBool | None = None
    """Whether a streamed call asks the server for its token usage. On by default wherever the
    provider's client can ask (langchain-openai asks only on OpenAI's own URL otherwise, and an
    OpenAI-compatible server then reports no usage); ``false`` for a server that refuses the request."""
    timeout: float | None = Field(default=None, gt=0)
    """The client's own per-request time limit, in seconds."""
    max_retries: int | None = Field(default=None, ge=0)
    """The client's own retries."""

    def chat_model(self) -> BaseChatModel:
        """The chat model this entry describes (the key read from ``api_key_env``)."""
        if self.provider in providers.registered():  # a backend of its own (``local``): no endpoint
            return resolve_chat_model(f"{self.provider}:{self.model}")
        from langchain.chat_models import init_chat_model

        kwargs: dict[str, Any] = {
            k: v
            for k, v in (("base_url", self.base_url), ("streaming", self.streaming),
                         ("timeout", self.timeout), ("max_retries", self.max_retries))
            if v is not None
        }  # fmt: skip
        if self.api_key_env:
            kwargs["api_key"] = os.environ[self.api_key_env]
        model = init_chat_model(self.model, model_provider=self.provider, **kwargs)
        if "stream_usage" in type(model).model_fields:
            model.stream_usage = self.stream_usage is not False  # type: ignore[attr-defined]
        return model


def load_config(path: str | Path) -> dict[str, Any]:
    """The ``MoAOptions`` fields the file describes, its models created.

    Raises:
        MoAConfigError: ``<file>:<line>: <field>: <what is wrong>``, before any model is created.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise MoAConfigError(f"{path}: cannot read the configuration: {error.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise MoAConfigError(f"{path}: not valid TOML: {error}") from None
    where = _Locator(path, text)
    entries: dict[str, Any] = {}
    if isinstance(proposers := data.get("proposers"), list):
        entries["proposers"] = [_entry(v, where, "proposers", i) for i, v in enumerate(proposers)]
    if (aggregator := data.get("aggregator")) is not None:
        entries["aggregator"] = _entry(aggregator, where, "aggregator", 0)
    options = {k: v for k, v in data.items() if k not in entries}
    if unknown := [k for k in options if k not in option_names()]:
        raise where.error(f"{unknown[0]}: unknown field (fields: {', '.join(option_names())})", unknown[0])
    named = {
        name: [_name(e) for e in value] if isinstance(value, list) else _name(value)
        for name, value in entries.items()
    }
    try:
        MoAOptions(**named, **options)  # every value checked as in Python, before any model is made
    except MoAConfigError as error:
        field = next((f for f in [*options, *named] if str(error).startswith(f)), None)
        raise where.error(str(error), field) from None
    made = {
        name: [_made(e) for e in value] if isinstance(value, list) else _made(value)
        for name, value in entries.items()
    }
    return {**options, **made}


def _entry(value: Any, where: _Locator, table: str, index: int) -> ModelEntry | str:
    field = f"proposers[{index}]" if table == "proposers" else table
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        msg = f"{field}: a model is a table (provider, model, ...) or a 'provider:model' string"
        raise where.error(msg, table)
    if secrets := [k for k in value if _SECRETS.search(k)]:
        msg = (
            f"{field}.{secrets[0]}: keys never go in the file: name the variable that holds it in api_key_env"
        )
        raise where.error(msg, secrets[0], table, index)
    try:
        entry = ModelEntry.model_validate(value)
    except ValidationError as error:
        problem = error.errors(include_url=False)[0]
        key = ".".join(str(p) for p in problem["loc"])
        raise where.error(f"{field}.{key}: {problem['msg']}", key, table, index) from None
    if entry.api_key_env and not os.environ.get(entry.api_key_env):
        msg = f"{field}.api_key_env: {entry.api_key_env} is not set (set it to the model's key)"
        raise where.error(msg, "api_key_env", table, index)
    return entry


def _name(entry: ModelEntry | str) -> str:
    return entry if isinstance(entry, str) else f"{entry.provider}:{entry.model}"


def _made(entry: ModelEntry | str) -> BaseChatModel | str:
    return entry if isinstance(entry, str) else entry.chat_model()


class _Locator:
    """The line of a field in the file, for errors that name it."""

    def __init__(self, path: Path, text: str) -> None:
        self.path, self.lines = path, text.splitlines()

    def line_of(self, key: str | None, table: str | None = None, index: int = 0) -> int | None:
        if key is None:
            return None
        current: str | None = None
        seen: dict[str, int] = {}
        for number, line in enumerate(self.lines, start=1):
            stripped = line.strip()
            if header := re.match(r"\[\[?\s*([\w.-]+)\s*\]\]?", stripped):
                current = header.group(1)
                seen[current] = seen.get(current, -1) + 1
                if key == current and table is None:
                    return number
                continue
            at = current is None if table is None else (current == table and seen[current] == index)
            if at and re.match(rf"{re.escape(key)}\s*=", stripped):
                return number
        return None

    def error(
        self, message: str, key: str | None = None, table: str | None = None, index: int = 0
    ) -> MoAConfigError:
        line = self.line_of(key, table, index)
        return MoAConfigError(f"{self.path}:{line}: {message}" if line else f"{self.path}: {message}")
