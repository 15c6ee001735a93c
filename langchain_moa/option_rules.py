"""The checks an option's raw value passes, and one error for all that fail: ``<option> must be
<what it takes>, got <value>``, before any model is made."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, ValidationError, ValidationInfo

from langchain_moa.errors import MoAConfigError

__all__ = [
    "ChatModel",
    "Seconds",
    "Temperature",
    "Tokens",
    "config_error",
    "is_chat_model_or_string",
    "is_int",
    "is_number",
    "is_price_table",
    "rule",
]


def rule(accepts: Callable[[Any], bool], expected: str, *, none: bool = True) -> BeforeValidator:
    """A check run on the raw value: ``<field> must be <expected>, got <value>`` when it fails."""

    def check(value: Any, info: ValidationInfo) -> Any:
        # None: the field's type says whether it is allowed (unless ``none`` is False).
        if (value is not None or not none) and not accepts(value):
            raise MoAConfigError(f"{info.field_name} must be {expected}, got {value!r}")
        return value

    return BeforeValidator(check)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_chat_model_or_string(value: Any) -> bool:
    from langchain_core.language_models import BaseChatModel  # not at import: `moa --help` starts fast

    return isinstance(value, str | BaseChatModel)


if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    ChatModel = BaseChatModel | str
else:
    ChatModel = Annotated[
        Any,
        rule(is_chat_model_or_string, "a LangChain chat model or a 'provider:model' string", none=False),
    ]


Seconds = Annotated[
    float | None,
    rule(lambda v: is_number(v) and v > 0, "a positive number of seconds, or unset (no limit)"),
]
Tokens = Annotated[
    int | None, rule(lambda v: is_int(v) and v >= 1, "an integer >= 1, or unset (each model's own limit)")
]
Temperature = Annotated[
    float | None, rule(lambda v: is_number(v) and v >= 0, "a number >= 0, or unset (each model's own)")
]


def is_price_table(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(price, dict) and set(price) == {"input", "output"}
        and all(is_number(x) and x >= 0 for x in price.values())
        for price in value.values()
    )  # fmt: skip


def config_error(error: ValidationError, names: Sequence[str]) -> MoAConfigError:
    """One ``MoAConfigError`` for pydantic's errors: our own messages as they are, the rest named."""
    messages = []
    for e in error.errors():
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, MoAConfigError):
            messages.append(str(cause))
            continue
        name = ".".join(str(part) for part in e["loc"]) or "options"
        if e["type"] == "missing":
            messages.append(f"{name} is required")
        elif e["type"] == "extra_forbidden":
            messages.append(f"unknown option {name!r} (options: {', '.join(names)})")
        else:
            messages.append(f"{name}: {e['msg'][:1].lower()}{e['msg'][1:]}, got {e['input']!r}")
    return MoAConfigError("; ".join(messages))
