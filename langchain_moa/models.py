"""Turn ``"provider:model"`` strings and chat model instances into chat models, with helpful errors.

A string is resolved like ``langchain.chat_models.init_chat_model``: ``"openai:gpt-4o"`` uses
``langchain-openai``. A bare name such as ``"Qwen/Qwen2.5-72B-Instruct-Turbo"`` is a Together model,
as in the paper's code. A registered provider's name (``langchain_moa.providers``) goes to it:
``"local:qwen2.5-coder-0.5b"`` (or ``"local:/path/to/model.gguf"``) to the embedded llama.cpp backend.
"""

from __future__ import annotations

import difflib
import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr

from langchain_moa import providers
from langchain_moa.errors import MoAConfigError

__all__ = [
    "DEFAULT_PROVIDER",
    "PROVIDER_KEYS",
    "endpoint_of",
    "model_label",
    "resolve_chat_model",
    "slow_to_make",
    "split_model_string",
    "unavailable_reason",
]

DEFAULT_PROVIDER = "together"
"""Provider of bare model names (the paper's code calls Together)."""

_TOGETHER_KEY_VAR = "TOGETHER_API_KEY"

PROVIDER_KEYS: dict[str, tuple[str, ...]] = {
    "anthropic": ("ANTHROPIC_API_KEY",),
    "cohere": ("COHERE_API_KEY",),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "fireworks": ("FIREWORKS_API_KEY",),
    "google_genai": ("GOOGLE_API_KEY", "GEMINI_API_KEY"),
    "groq": ("GROQ_API_KEY",),
    "huggingface": ("HUGGINGFACEHUB_API_TOKEN", "HF_TOKEN"),
    "mistralai": ("MISTRAL_API_KEY",),
    "nvidia": ("NVIDIA_API_KEY",),
    "openai": ("OPENAI_API_KEY",),
    "openrouter": ("OPENROUTER_API_KEY",),
    "perplexity": ("PPLX_API_KEY",),
    "together": (_TOGETHER_KEY_VAR,),
    "upstage": ("UPSTAGE_API_KEY",),
    "xai": ("XAI_API_KEY",),
}
"""The environment variables a key-based provider's LangChain integration reads its key from (any one
will do). Providers with other ways to sign in (Azure, Bedrock, Vertex AI, Ollama) are not checked here."""


def _known_providers() -> list[str]:
    from langchain.chat_models import base  # imported lazily: `langchain` is slow to import

    # The providers init_chat_model accepts, and the registered ones. No public API lists the former;
    # tests/unit_tests/test_upstream.py pins this private name (.ci/newest runs it on new releases).
    return sorted({*base._BUILTIN_PROVIDERS, *providers.registered()})


def split_model_string(spec: str) -> tuple[str, str]:
    """Split ``"provider:model"`` into its parts; a bare name gets the default provider.

    Examples:
        >>> split_model_string("openai:gpt-4o-mini")
        ('openai', 'gpt-4o-mini')
        >>> split_model_string("Qwen/Qwen2.5-72B-Instruct-Turbo")
        ('together', 'Qwen/Qwen2.5-72B-Instruct-Turbo')
    """
    prefix, sep, rest = spec.partition(":")
    # Model names may themselves contain ':' (e.g. ollama tags) but never before an org '/'.
    if sep and "/" not in prefix and rest:
        return prefix, rest
    return DEFAULT_PROVIDER, spec


def resolve_chat_model(spec: BaseChatModel | str, *, api_key: SecretStr | None = None) -> BaseChatModel:
    """Return the chat model ``spec`` names.

    Args:
        spec: a chat model (returned as is), ``"provider:model"`` or a bare Together model name.
        api_key: key for Together models; defaults to the ``TOGETHER_API_KEY`` variable.

    Raises:
        MoAConfigError: unknown provider (with a suggestion), missing package, or missing key.
    """
    if isinstance(spec, BaseChatModel):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        msg = f"a model must be a LangChain chat model or a 'provider:model' string, got {spec!r}"
        raise MoAConfigError(msg)
    provider, model = split_model_string(spec.strip())
    known = _known_providers()
    if provider not in known:
        close = difflib.get_close_matches(provider, known, n=1)
        hint = f" — did you mean {close[0]!r}?" if close else f"; known providers: {', '.join(known)}"
        msg = f"unknown provider {provider!r} in model {spec!r}{hint}"
        raise MoAConfigError(msg)
    if (registered := providers.registered().get(provider)) is not None:
        return registered.make(model)
    kwargs: dict[str, Any] = {}
    if provider == DEFAULT_PROVIDER:
        key = api_key.get_secret_value() if api_key else os.environ.get(_TOGETHER_KEY_VAR)
        if not key:
            msg = (
                f"no API key for Together model {model!r}: set {_TOGETHER_KEY_VAR} or pass "
                "api_key=... (or use a local preset, which needs no key)"
            )
            raise MoAConfigError(msg)
        # Together reports token usage while streaming only when asked to.
        kwargs = {"api_key": key, "stream_usage": True}
    elif (variables := PROVIDER_KEYS.get(provider)) and not any(os.environ.get(v) for v in variables):
        msg = (
            f"no API key for {provider} model {model!r}: set {' or '.join(variables)} "
            "(or use a local preset, which needs no key)"
        )
        raise MoAConfigError(msg)
    from langchain.chat_models import init_chat_model

    try:
        return init_chat_model(model, model_provider=provider, **kwargs)
    except ImportError as e:
        msg = f"model {spec!r} needs a package that is not installed: {e}"
        raise MoAConfigError(msg) from e
    except Exception as e:  # the provider's own complaint (credentials, region, ...), on one line
        first_line = (str(e).strip().splitlines() or [""])[0]
        msg = f"model {spec!r} could not be created: {type(e).__name__}: {first_line}"
        raise MoAConfigError(msg) from e


def unavailable_reason(spec: str) -> str | None:
    """Why the model a string names cannot run here (its key or its install is missing), without
    creating it; ``None`` when nothing is known to be missing."""
    provider, model = split_model_string(spec.strip())
    if (registered := providers.registered().get(provider)) is not None:
        return registered.unavailable(model)
    variables = PROVIDER_KEYS.get(provider, ())
    if variables and not any(os.environ.get(v) for v in variables):
        return f"needs {' or '.join(variables)}"
    return None


def slow_to_make(spec: BaseChatModel | str) -> bool:
    """Whether making the model a string names takes seconds (its provider loads weights)."""
    if not isinstance(spec, str):
        return False
    provider = providers.registered().get(split_model_string(spec.strip())[0])
    return provider is not None and provider.slow_to_make


def endpoint_of(model: Any) -> str | None:
    """The server a chat model calls when it was given one (``base_url``), without any credentials in
    it: failures name it, so that an unreachable endpoint is found at once."""
    for attr in ("openai_api_base", "base_url", "anthropic_api_url"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            parts = urlsplit(value)
            host = parts.netloc.rpartition("@")[2]  # never a user or password written into the URL
            return urlunsplit(parts._replace(netloc=host))
    return None


def model_label(model: BaseChatModel) -> str:
    """A short human-readable name of a chat model, e.g. ``"Qwen/Qwen2.5-72B-Instruct-Turbo"``."""
    for attr in ("model_name", "model", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return model._llm_type
