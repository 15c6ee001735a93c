"""The MoA configurations a server runs, by name: each built on first use and kept, and the variants a
request's own options make."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from langchain_moa.errors import MoAConfigError

if TYPE_CHECKING:
    from langchain_moa.chat_models import MoAChatModel

__all__ = ["ModelRegistry"]


class ModelRegistry:
    """The MoA configurations a server runs, by name; each is built on first use and then kept (so
    local models stay loaded between requests), each under a lock of its own (a slow first build
    holds up no other model). A request's own options (the ``moa`` field) make a variant that shares
    the configuration's models; the last ``VARIANTS`` variants are kept."""

    VARIANTS = 64

    def __init__(self, factories: Mapping[str, Callable[[], MoAChatModel]]) -> None:
        self._factories = dict(factories)
        self._built: dict[str, MoAChatModel] = {}
        self._locks = {name: threading.Lock() for name in self._factories}
        self._variants: OrderedDict[tuple[str, str], MoAChatModel] = OrderedDict()
        self._variants_lock = threading.Lock()

    def names(self) -> list[str]:
        return list(self._factories)

    def get(self, name: str, options: Mapping[str, Any] | None = None) -> MoAChatModel:
        """The model called ``name``, with ``options`` (``MoAOptions`` fields) over its own.

        Raises:
            MoAConfigError: an option ``MoAOptions`` refuses (the message names it).
        """
        with self._locks[name]:
            if name not in self._built:
                self._built[name] = self._factories[name]()
            model = self._built[name]
        if not options:
            return model
        if "max_cost" in options and (limit := model.max_cost) is not None:
            asked = options["max_cost"]  # a request may lower the operator's budget, never raise it
            if asked is None or (
                isinstance(asked, int | float) and not isinstance(asked, bool) and asked > limit
            ):
                raise MoAConfigError(f"max_cost must be at most the server's {limit}, got {asked!r}")
        key = (name, json.dumps(options, sort_keys=True))
        with self._variants_lock:
            if (variant := self._variants.get(key)) is not None:
                self._variants.move_to_end(key)
                return variant
        variant = model.model_copy(update=dict(options))
        variant.graph  # noqa: B018 -- checked and built now: a bad value fails this request alone
        with self._variants_lock:
            self._variants[key] = variant
            while len(self._variants) > self.VARIANTS:
                self._variants.popitem(last=False)
        return variant
