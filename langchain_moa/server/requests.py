"""What reaches ``POST /v1/chat/completions``: the one validation model that checks every field MoA
reads, typed strictly (the body was read within bounds: ``server.limits``).

Whatever reaches the server is untrusted, so a request is checked by this model alone, before any
model runs, and refused with OpenAI's 400 naming the field: a string where a boolean belongs
(``"stream": "yes"``), a boolean or a string where a number belongs (``"max_tokens": true``), a
temperature outside OpenAI's 0-2 or not finite, an unknown ``tool_choice``, a tool without a function,
a tool message without ``tool_call_id``, and the fields MoA cannot honour (``logprobs``, ``n`` > 1,
audio). ``response_format`` is honoured: the aggregator answers in JSON or in the schema. Fields MoA
does not know are ignored, as OpenAI-compatible servers do with vendor options.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from langchain_moa.options import per_request_options
from langchain_moa.server.limits import Refused
from langchain_moa.server.signing import ProposalSigner

__all__ = ["MAX_TOKENS", "ChatRequest", "ResponseFormat", "ToolSpec", "parse"]

MAX_TOKENS = 1_000_000
"""The most tokens an answer may be asked for: above any model's output limit, far below what would
overflow a provider's integer (a larger value is a client's mistake, refused before it goes upstream)."""

Tokens = Annotated[StrictInt, Field(ge=1, le=MAX_TOKENS)]
Number = StrictInt | StrictFloat


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class _TextPart(_Strict):
    type: Literal["text"]
    text: StrictStr


class _ImageURL(_Strict):
    url: StrictStr
    detail: Literal["auto", "low", "high"] | None = None


class _ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: _ImageURL


Content = StrictStr | list[Annotated[_TextPart | _ImagePart, Field(discriminator="type")]]


def _content(content: Content) -> str | list[str | dict[str, Any]]:
    """A message's content as LangChain takes it: a string as is, parts as LangChain content blocks
    (text parts as text, images as OpenAI's ``image_url`` parts, which every LangChain chat model
    reads). Nothing is joined or dropped: each part reaches the models as the client sent it."""
    if isinstance(content, str):
        return content
    return [part.model_dump(exclude_none=True) for part in content]


def _text_only(content: Content) -> Content:
    """Content that must be text (system and tool messages, as in OpenAI's API)."""
    if not isinstance(content, str) and (kinds := [p.type for p in content if p.type != "text"]):
        raise ValueError(f"a {kinds[0]!r} part cannot be sent in this message: only text parts can")
    return content


class _Function(_Strict):
    name: StrictStr
    arguments: StrictStr


class _ToolCall(_Strict):
    id: StrictStr
    type: Literal["function"] = "function"
    function: _Function

    @field_validator("function")
    @classmethod
    def _arguments_are_an_object(cls, function: _Function) -> _Function:
        try:
            args = json.loads(function.arguments or "{}")
        except json.JSONDecodeError:
            args = None
        if not isinstance(args, dict):
            raise ValueError(f"arguments must be a JSON object, got {function.arguments[:80]!r}")
        return function


class _System(_Strict):
    role: Literal["system", "developer"]
    content: Content

    _text = field_validator("content")(_text_only)

    def message(self) -> BaseMessage:
        return SystemMessage(content=_content(self.content))


class _User(_Strict):
    role: Literal["user"]
    content: Content

    def message(self) -> BaseMessage:
        return HumanMessage(content=_content(self.content))


class _Assistant(_Strict):
    role: Literal["assistant"]
    content: Content | None = None

    @field_validator("content")
    @classmethod
    def _text(cls, content: Content | None) -> Content | None:
        return None if content is None else _text_only(content)

    tool_calls: list[_ToolCall] | None = None
    moa: Any = None
    """The ``moa`` record this server returned with the answer, carried back (``fanout="turn"``):
    trusted only when signed by the server (``signing``)."""

    def message(self, moa: dict[str, Any] | None = None) -> BaseMessage:
        calls = [
            {"id": c.id, "name": c.function.name, "args": json.loads(c.function.arguments or "{}")}
            for c in self.tool_calls or []
        ]
        metadata = {"moa": moa} if moa else {}
        content = _content(self.content) if self.content is not None else ""
        return AIMessage(content=content, tool_calls=calls, response_metadata=metadata)


class _Tool(_Strict):
    role: Literal["tool"]
    content: Content
    tool_call_id: StrictStr

    _text = field_validator("content")(_text_only)

    def message(self) -> BaseMessage:
        return ToolMessage(content=_content(self.content), tool_call_id=self.tool_call_id)


Message = Annotated[_System | _User | _Assistant | _Tool, Field(discriminator="role")]


class _FunctionSpec(_Strict):
    name: StrictStr = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: StrictStr | None = None
    parameters: dict[str, Any] | None = None
    strict: StrictBool | None = None


class ToolSpec(_Strict):
    """A tool the aggregator may call: OpenAI's ``{"type": "function", "function": {...}}``."""

    type: Literal["function"]
    function: _FunctionSpec


class _NamedFunction(_Strict):
    name: StrictStr


class _NamedToolChoice(_Strict):
    type: Literal["function"]
    function: _NamedFunction


class _JsonSchema(_Strict):
    name: StrictStr = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: StrictStr | None = None
    json_schema: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: StrictBool | None = None


class ResponseFormat(_Strict):
    """OpenAI's ``response_format``: plain text, any JSON object, or JSON in a schema."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: _JsonSchema | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("json_schema is required when type is 'json_schema'")
        return self

    def function(self) -> dict[str, Any]:
        """The schema as a function for the aggregator to call (how ``with_structured_output`` asks)."""
        assert self.json_schema is not None
        spec = self.json_schema
        return {"name": spec.name, "description": spec.description or "", "parameters": spec.json_schema}


class _StreamOptions(_Strict):
    include_usage: StrictBool = False


class ChatRequest(_Strict):
    """The fields of ``POST /v1/chat/completions`` that MoA reads, each checked as OpenAI checks it."""

    model: StrictStr
    messages: list[Message] = Field(min_length=1)
    stream: StrictBool = False
    stream_options: _StreamOptions | None = None
    max_tokens: Tokens | None = None
    max_completion_tokens: Tokens | None = None
    temperature: Annotated[Number, Field(ge=0, le=2)] | None = None
    stop: StrictStr | Annotated[list[StrictStr], Field(max_length=4)] | None = None
    tools: list[ToolSpec] | None = None
    tool_choice: Literal["none", "auto", "required"] | _NamedToolChoice | None = None
    parallel_tool_calls: StrictBool | None = None
    response_format: ResponseFormat | None = None
    n: Literal[1] = 1
    logprobs: Literal[False] | None = None
    """Not honoured: MoA's answer is a synthesis, with no token probabilities of its own."""
    top_logprobs: None = None
    audio: None = None
    modalities: list[Literal["text"]] | None = None
    moa: dict[str, Any] | None = None
    """This request's own MoA options, e.g. ``{"staircase": 16}``: those of ``per_request_options()``,
    which shape how an answer is made but never which models run or how long anything may take."""

    @field_validator("moa")
    @classmethod
    def _per_request(cls, options: dict[str, Any] | None) -> dict[str, Any] | None:
        allowed = per_request_options()
        if unknown := [k for k in options or {} if k not in allowed]:
            msg = f"{unknown[0]!r} cannot be set per request (per-request options: {', '.join(allowed)})"
            raise ValueError(msg)
        return options

    @model_validator(mode="after")
    def _one_way_to_answer(self) -> ChatRequest:
        if self.tools and self.structured:
            raise ValueError("response_format cannot be combined with tools here: give one of them")
        return self

    def unoffered_tool(self) -> str | None:
        """Why ``tool_choice`` cannot be honoured: it names a tool that ``tools`` does not offer."""
        if not isinstance(self.tool_choice, _NamedToolChoice):
            return None
        offered = [tool.function.name for tool in self.tools or []]
        if (name := self.tool_choice.function.name) in offered:
            return None
        offer = ", ".join(offered) or "none"
        return f"tool_choice names the tool {name!r}, which tools does not offer ({offer})"

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def structured(self) -> bool:
        """Whether the answer must be JSON (``response_format`` other than text)."""
        return self.response_format is not None and self.response_format.type != "text"

    def conversation(self, signer: ProposalSigner) -> tuple[list[BaseMessage], list[dict[str, Any]]]:
        """The messages, and the carried ``moa`` records ignored (with why): only those ``signer``
        signed are kept, for ``fanout`` to reuse."""
        messages: list[BaseMessage] = []
        ignored: list[dict[str, Any]] = []
        for number, message in enumerate(self.messages):
            if not isinstance(message, _Assistant) or message.moa is None:
                messages.append(message.message())
                continue
            record, reason = signer.verify(message.moa, self.transcript(number))
            if reason:
                ignored.append({"message": number, "reason": reason})
            messages.append(message.message(record))
        return messages, ignored

    def transcript(self, until: int | None = None) -> list[dict[str, Any]]:
        """The messages before ``until`` (all by default) as the client sent them, without the ``moa``
        records they carry: what a signature binds carried proposals to."""
        return [m.model_dump(mode="json", exclude={"moa"}, exclude_none=True) for m in self.messages[:until]]

    def call_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the MoA call: sampling for every model; stop and tools for the aggregator
        (tools are bound separately, with ``tool_choice``)."""
        kwargs: dict[str, Any] = {}
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        if (limit := self.max_completion_tokens or self.max_tokens) is not None:
            kwargs["max_tokens"] = limit
        if self.stop:
            kwargs["stop"] = [self.stop] if isinstance(self.stop, str) else self.stop
        return kwargs

    def tool_kwargs(self) -> dict[str, Any]:
        """``bind_tools`` arguments: the tools as OpenAI gives them, the choice, parallel calls."""
        kwargs: dict[str, Any] = {}
        if isinstance(self.tool_choice, _NamedToolChoice):
            kwargs["tool_choice"] = self.tool_choice.model_dump()
        elif self.tool_choice is not None:
            kwargs["tool_choice"] = self.tool_choice
        if self.parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = self.parallel_tool_calls
        return kwargs


# -- what reaches the server, before it is a request --------------------------------------------

Request = TypeVar("Request", bound=ChatRequest)


def parse(body: bytes, model: type[Request] = ChatRequest) -> Request:  # type: ignore[assignment]
    """The request, checked by its one ``model`` (JSON syntax, UTF-8 and nesting depth included)."""
    try:
        request = model.model_validate_json(body)
    except ValidationError as error:
        problem = error.errors(include_url=False)[0]
        if problem["type"] == "json_invalid":
            raise Refused(400, f"the body is not valid JSON: {problem['msg']}") from None
        param = _param(problem["loc"], json.loads(body), missing=problem["type"] == "missing")
        raise Refused(400, f"{param or 'the body'}: {problem['msg']}", param=param) from None
    if reason := request.unoffered_tool():
        raise Refused(400, reason, param="tool_choice")
    return request


def _param(loc: tuple[int | str, ...], data: Any, *, missing: bool) -> str | None:
    """The field a validation error is about, as the client wrote it (``messages.1.tool_call_id``):
    pydantic's path without the names of union members it tried (``int``, ``tool``)."""
    parts, node = [], data
    for number, part in enumerate(loc):
        present = isinstance(node, dict) and part in node
        present = present or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node))
        if present:
            node = node[part]
        elif not (missing and number == len(loc) - 1):  # a required field the client left out is named
            continue
        parts.append(str(part))
    return ".".join(parts) or None
