"""Optional parts behind pip extras: a clear error naming the extra when one is missing."""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, distribution
from urllib.parse import unquote, urlparse

from langchain_moa.errors import MoAConfigError

__all__ = ["install_command", "require_extra"]


@functools.cache
def _installed_from() -> tuple[str, bool]:
    """Where pip can find this package again (its name on the index, or the checkout it was installed
    from) and whether that install is editable."""
    try:
        origin = json.loads(distribution("langchain-moa").read_text("direct_url.json") or "{}")
    except (PackageNotFoundError, ValueError):
        origin = {}
    url = urlparse(origin.get("url", ""))
    if url.scheme == "file" and "dir_info" in origin:
        return unquote(url.path), bool(origin["dir_info"].get("editable"))
    return "langchain-moa", False


def install_command(extra: str) -> str:
    """The ``pip install`` command that adds ``extra`` the way this package was installed: from the
    index, or from the checkout it came from (it is not on the index yet)."""
    source, editable = _installed_from()
    return f'pip install {"-e " if editable else ""}"{source}[{extra}]"'


def require_extra(extra: str, modules: Sequence[str], needed_by: str) -> None:
    """Raise ``MoAConfigError`` naming ``pip install "langchain-moa[extra]"`` if a module is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        msg = (
            f"{needed_by} needs {', '.join(missing)}, which is not installed. "
            f"Install it with: {install_command(extra)}"
        )
        raise MoAConfigError(msg)
