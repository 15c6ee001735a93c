"""``moa serve``: MoA behind an OpenAI-compatible HTTP API (extra ``[serve]``: FastAPI and uvicorn).

Any OpenAI client, chat front-end or evaluation harness can then use MoA unchanged::

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
    client.chat.completions.create(model="moa-local", messages=[{"role": "user", "content": "Hi"}])
"""

from __future__ import annotations

import importlib.util

from langchain_moa.errors import MoAConfigError

__all__ = ["require_serve_extra"]


def require_serve_extra() -> None:
    """Raise a clear error when the packages of the ``[serve]`` extra are missing."""
    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        msg = (
            f"moa serve needs {', '.join(missing)}, which is not installed. "
            'Install it with: pip install "langchain-moa[serve]"'
        )
        raise MoAConfigError(msg)
