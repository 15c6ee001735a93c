"""Optional parts behind pip extras: a clear error naming the extra when one is missing."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

from langchain_moa.errors import MoAConfigError

__all__ = ["require_extra"]


def require_extra(extra: str, modules: Sequence[str], needed_by: str) -> None:
    """Raise ``MoAConfigError`` naming ``pip install "langchain-moa[extra]"`` if a module is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        msg = (
            f"{needed_by} needs {', '.join(missing)}, which is not installed. "
            f'Install it with: pip install "langchain-moa[{extra}]"'
        )
        raise MoAConfigError(msg)
