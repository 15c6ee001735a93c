"""``moa serve``: MoA behind an OpenAI-compatible HTTP API (extra ``[serve]``: FastAPI and uvicorn).

Any OpenAI client, chat front-end or evaluation harness can then use MoA unchanged::

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
    client.chat.completions.create(model="moa-local", messages=[{"role": "user", "content": "Hi"}])
"""

from __future__ import annotations

from langchain_moa.extras import require_extra

__all__ = ["require_serve_extra"]


def require_serve_extra() -> None:
    """Raise a clear error when the packages of the ``[serve]`` extra are missing."""
    require_extra("serve", ("fastapi", "uvicorn"), "moa serve")
