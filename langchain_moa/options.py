"""Every Mixture-of-Agents option, declared once: type, default, documentation and validation.

``MoAOptions`` is the one place an option lives. ``MoAChatModel`` inherits its fields,
``build_moa_graph`` validates its keywords with it, the cache key is derived from it, presets are
dictionaries of it, the ``moa`` command's help text is read from it and LangGraph Server's
assistant configuration is checked by it. Invalid values fail at construction with
``MoAConfigError`` naming the value and the fix, before any model is created or called.

Examples:
    >>> MoAOptions(proposers=["openai:gpt-4o-mini"], aggregator="openai:gpt-4o", temperature=-1)
    Traceback (most recent call last):
    ...
    langchain_moa.errors.MoAConfigError: temperature must be a number >= 0, or unset (each model's own), ...
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from langchain_moa.aggregation import STAIRCASE_STRATEGIES, STRATEGIES, Confidence, Strategy, strategy_of
from langchain_moa.errors import MoAConfigError
from langchain_moa.option_rules import (
    ChatModel,
    Seconds,
    Temperature,
    Tokens,
    config_error,
    is_int,
    is_number,
    is_price_table,
    rule,
)
from langchain_moa.prompts import AGGREGATOR_PROMPT

__all__ = ["STAIRCASE_LAYOUTS", "MoAOptions", "describe", "option_names", "per_request_options"]

STAIRCASE_LAYOUTS = ("auto", "prefill", "turns")
"""The values of ``staircase_layout``."""


class MoAOptions(BaseModel):
    """The options of a Mixture-of-Agents: who proposes, who aggregates, and how a call runs."""

    model_config = ConfigDict(arbitrary_types_allowed=True, use_attribute_docstrings=True, extra="forbid")

    proposers: Annotated[list[ChatModel], rule(lambda v: isinstance(v, list | tuple), "a list")]
    """Proposer models: chat models, ``"provider:model"`` strings (as ``init_chat_model`` takes them)
    or bare Together model names (e.g. ``"Qwen/Qwen2.5-72B-Instruct-Turbo"``). Each proposer layer
    asks all of them; repeat one model to sample it several times (Self-MoA)."""
    aggregator: ChatModel
    """The model that synthesises the last layer's answers into the reply (a 'provider:model' string
    or a chat model)."""
    layers: Annotated[
        int,
        rule(
            lambda v: is_int(v) and v >= 1,
            "an integer >= 1 (1 = the aggregator alone, 2 = one proposer layer)",
        ),
    ] = 2
    """Layers as the paper counts them: 3 = two proposer layers + the aggregator; 1 = the aggregator
    alone (a single-model baseline). Default 2."""
    aggregator_prompt: Annotated[
        str, rule(lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string")
    ] = AGGREGATOR_PROMPT
    """The aggregate-and-synthesize prompt; the references follow it as ``"\\n{i}. {answer}"``.
    Default: the paper's prompt, byte for byte."""
    temperature: Temperature = None
    """Sampling temperature of every proposer and aggregator call (``None``: each model's own)."""
    max_tokens: Tokens = None
    """Token limit of the aggregator's answer, and of every proposer's unless ``proposer_max_tokens``
    is set (``None``: each model's own)."""
    proposer_max_tokens: Tokens = Field(default=None, json_schema_extra={"per_request": True})
    """Token limit of every proposer answer, the references' length, apart from the aggregator's
    ``max_tokens`` (``None``: ``max_tokens``). Short proposals are the cheapest latency cut."""
    staircase: Annotated[
        int | None,
        rule(lambda v: is_int(v) and v >= 1, "an integer >= 1 (tokens per chunk), or unset (off)"),
    ] = Field(default=None, json_schema_extra={"per_request": True})
    """Staircase aggregation in chunks of this many tokens (Wang et al. 2025, arXiv 2510.05059): the
    last layer's proposers stream, the aggregator starts once each has written its first chunk and
    takes in each next round of chunks as it arrives, writing its answer all along. ``None``: the
    aggregator waits for whole proposals (the paper's MoA). See ``langchain_moa.staircase``."""
    staircase_layout: Annotated[
        Literal["auto", "prefill", "turns"],
        rule(lambda v: v in STAIRCASE_LAYOUTS, "'auto', 'prefill' or 'turns'", none=False),
    ] = Field(default="auto", json_schema_extra={"per_request": True})
    """How each staircase round shows the aggregator its answer so far: ``"prefill"`` continues it,
    ``"turns"`` answers on in a turn of its own, ``"auto"`` is ``"prefill"`` for the embedded local
    models and ``"turns"`` for any other. With ``"prefill"`` the answer so far is the last, unfinished
    assistant message (llama.cpp's server continues it; OpenAI's chat API starts a new one), after the
    references so far; with ``"turns"`` the prompt only grows at its end, which any chat API takes.
    See ``langchain_moa.staircase``."""
    timeout: Seconds = None
    """LangChain's standard per-call time limit: the default of ``proposer_timeout`` and
    ``aggregator_timeout``."""
    proposer_timeout: Seconds = None
    """Seconds one proposer call may take once it has started; a slower proposer is cancelled and
    dropped from the references. ``None``: ``timeout``, else no limit."""
    aggregator_timeout: Seconds = None
    """Seconds the aggregator's answer may take; past it the call raises ``AggregatorError``.
    ``None``: ``timeout``, else no limit."""
    min_proposals: Annotated[int, rule(lambda v: is_int(v) and v >= 1, "an integer >= 1")] = Field(
        default=1, json_schema_extra={"per_request": True}
    )
    """Answers each proposer layer must keep, or the call raises ``MoAError``. Default 1."""
    proposal_quorum: Annotated[
        int | None, rule(lambda v: is_int(v) and v >= 1, "an integer >= 1, or unset (wait for all)")
    ] = Field(default=None, json_schema_extra={"per_request": True})
    """Go on as soon as this many of a layer's proposers have answered, cancelling the slower ones
    (cut proposals are recorded with ``cut=True``). ``None``: wait for every proposer."""
    layer_deadline: Seconds = None
    """Seconds after which a layer goes on with the answers it has, cancelling the rest, provided
    ``min_proposals`` are in (else it waits until they are). ``None``: no deadline."""
    max_concurrency: Annotated[
        int | None, rule(lambda v: is_int(v) and v >= 1, "an integer >= 1, or unset (no bound)")
    ] = Field(default=None, json_schema_extra={"changes_answers": False})
    """Bound on simultaneous model calls across every call of this MoA (``None``: no bound)."""
    aggregation: Annotated[
        Any,
        rule(
            lambda v: v in STRATEGIES or isinstance(v, Strategy) or callable(v),
            f"one of {', '.join(map(repr, STRATEGIES))}, a Strategy, or a function (conversation, proposals)",
            none=False,
        ),
    ] = Field(default="synthesize", json_schema_extra={"per_request": True})
    """How the aggregator turns the proposals into the answer: ``"synthesize"`` (the paper's prompt),
    ``"shuffle"`` (the same, proposals in a random order), ``"select"`` (the most consistent proposal,
    verbatim), ``"tally"`` (the paper's prompt with the vote count), ``"majority"`` (a strict
    majority's proposal verbatim, else the paper's prompt), or your own function. See
    ``langchain_moa.aggregation``."""
    seed: Annotated[int | None, rule(is_int, "an integer, or unset")] = Field(
        default=None, json_schema_extra={"per_request": True}
    )
    """Seed of the random orders of ``aggregation="shuffle"`` (``None``: a fresh order every run)."""
    fanout: Annotated[
        Literal["call", "turn"] | int,
        rule(
            lambda v: v in ("call", "turn") or (is_int(v) and v >= 1),
            "'call', 'turn' or an integer >= 1 (rerun the proposers every N calls of a turn)",
            none=False,
        ),
    ] = "call"
    """When the proposers run in a tool loop: every ``"call"`` (the paper's MoA), once per user
    ``"turn"`` (later calls of the turn reuse its proposals; the aggregator runs every call, with the
    tools), or every N calls of a turn. See ``langchain_moa.fanout``."""
    max_retries: Annotated[
        int | None,
        rule(lambda v: is_int(v) and v >= 0, "an integer >= 0, or unset (each model's own retries)"),
    ] = None
    """Retries of each proposer call that raises (exponential backoff with jitter). ``None``: leave
    retries to each model's own client (most retry rate limits and 5xx already). The aggregator
    streams its answer and relies on its own client's retries."""
    early_exit: Annotated[
        float | None,
        rule(lambda v: is_number(v) and 0.5 < v <= 1, "a share in (0.5, 1], e.g. 0.67, or unset (off)"),
    ] = Field(default=None, json_schema_extra={"per_request": True})
    """Agreement exit: when at least this share of a layer's proposals state the same final answer,
    MoA answers with one of them (the first to finish) and skips the aggregator and any later layer.
    ``None``: off (the paper's MoA). Free text agrees only by ``agreement_embeddings``. See
    ``langchain_moa.agreement``."""
    cascade: Annotated[
        int | None, rule(lambda v: is_int(v) and v >= 1, "an integer >= 1, or unset (all at once)")
    ] = Field(default=None, json_schema_extra={"per_request": True})
    """Cascade: the first this-many proposers of each layer run first, and the others only when those
    disagree (by ``early_exit``'s share, else all of them). Put cheap or strong models first.
    ``None``: every proposer at once."""
    agreement_embeddings: Annotated[
        Any, rule(lambda v: hasattr(v, "aembed_query"), "a LangChain Embeddings, or unset")
    ] = None
    """An embedding model (any LangChain ``Embeddings``) by which proposals in free text agree for
    ``early_exit`` and ``cascade``. ``None``: only stated answers agree."""
    agreement_threshold: Annotated[
        float, rule(lambda v: is_number(v) and 0 < v <= 1, "a number in (0, 1]", none=False)
    ] = Field(default=0.9, json_schema_extra={"per_request": True})
    """Cosine similarity at which two proposals' embeddings agree. Default 0.9."""
    confidence_prior: Annotated[
        dict[str, float] | None,
        rule(
            lambda v: isinstance(v, dict) and all(is_number(x) for x in v.values()),
            "a mapping of model name to a number (e.g. its accuracy), or unset",
        ),
    ] = None
    """``aggregation="confidence"``'s tie-break: a number per proposer model (e.g. its accuracy from
    ``moa eval exact``), the higher winning a tie. ``None``: ties go to the proposers' order."""
    max_cost: Annotated[
        float | None, rule(lambda v: is_number(v) and v > 0, "a positive number of US dollars, or unset")
    ] = Field(default=None, json_schema_extra={"changes_answers": False, "per_request": True})
    """US dollars one call may cost at most: a call whose worst case (every prompt at full length, every
    model at its token limit) exceeds it is refused before any model runs. ``None``: no limit."""
    prices: Annotated[
        dict[str, dict[str, float]] | None,
        rule(is_price_table, "a mapping of model name to {'input': $, 'output': $} per million tokens"),
    ] = Field(default=None, json_schema_extra={"changes_answers": False})
    """Prices of models the price table does not know (local, private endpoints), by model name: US
    dollars per million input and output tokens, e.g. ``{"my-model": {"input": 0.2, "output": 0.6}}``.
    They also override the table. See ``langchain_moa.costs``."""

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise config_error(error, option_names()) from None

    @model_validator(mode="after")
    def _check_together(self) -> Self:
        n = len(self.proposers)
        if self.layers > 1 and not n:
            msg = (
                "proposers is empty: give at least one model, e.g. proposers=['openai:gpt-4o-mini'] "
                "(or layers=1)"
            )
            raise MoAConfigError(msg)
        if self.layers > 1 and self.min_proposals > n:
            msg = (
                f"min_proposals must be between 1 and the number of proposers ({n}), "
                f"got {self.min_proposals!r}"
            )
            raise MoAConfigError(msg)
        strategy = strategy_of(self.aggregation)
        if self.staircase is not None and not strategy.reads_partial_proposals:
            msg = (
                f"staircase cannot be combined with aggregation={strategy.name!r}, which needs whole "
                f"proposals; staircase aggregates with {' or '.join(map(repr, STAIRCASE_STRATEGIES))} "
                "(or leave staircase unset)"
            )
            raise MoAConfigError(msg)
        if self.cascade is not None and self.layers > 1 and not self.min_proposals <= self.cascade <= n:
            msg = (
                f"cascade must be between min_proposals ({self.min_proposals}) and the number of "
                f"proposers ({n}), got {self.cascade!r}"
            )
            raise MoAConfigError(msg)
        adaptive = [name for name in ("early_exit", "cascade") if getattr(self, name) is not None]
        if adaptive and self.staircase is not None:
            msg = (
                f"{adaptive[0]} cannot be combined with staircase: staircase starts the answer before the "
                f"proposals are whole, {adaptive[0]} decides on whole proposals (leave one of them unset)"
            )
            raise MoAConfigError(msg)
        if self.confidence_prior is not None and strategy.name != "confidence":
            msg = (
                f"confidence_prior is the tie-break of aggregation='confidence', not of "
                f"{strategy.name!r}: set aggregation='confidence' or leave confidence_prior unset"
            )
            raise MoAConfigError(msg)
        quorum = self.proposal_quorum
        if quorum is not None and self.layers > 1 and not self.min_proposals <= quorum <= n:
            msg = (
                f"proposal_quorum must be between min_proposals ({self.min_proposals}) and the number of "
                f"proposers ({n}), got {quorum!r}"
            )
            raise MoAConfigError(msg)
        return self

    # -- what the rest of the package derives ----------------------------------------------------

    @property
    def proposer_limit(self) -> float | None:
        """Seconds one proposer call may take (``proposer_timeout``, else ``timeout``)."""
        return self.proposer_timeout if self.proposer_timeout is not None else self.timeout

    @property
    def aggregator_limit(self) -> float | None:
        """Seconds the aggregator may take (``aggregator_timeout``, else ``timeout``)."""
        return self.aggregator_timeout if self.aggregator_timeout is not None else self.timeout

    def strategy(self) -> Strategy:
        """The aggregation strategy these options configure."""
        strategy = strategy_of(self.aggregation)
        if self.confidence_prior and isinstance(strategy, Confidence):
            return Confidence(prior=self.confidence_prior)
        return strategy

    def why_no_tools(self, *, in_rounds: bool | None = None) -> str | None:
        """Why this MoA's aggregator cannot call tools (nor answer in a schema), or ``None`` if it can.
        ``in_rounds``: whether this call aggregates in staircase rounds (default: ``staircase`` is set)."""
        if not (strategy := strategy_of(self.aggregation)).calls_tools:
            return f"aggregation={strategy.name!r} answers with text and cannot call tools"
        if self.staircase is not None if in_rounds is None else in_rounds:
            return (
                "staircase answers with text and cannot call tools (its answer starts before the "
                "proposals are complete): leave staircase unset for tool calls, or fanout='turn' so that "
                "the later calls of a turn, which reuse its proposals, can call them"
            )
        return None

    def answer_key(self) -> dict[str, Any]:
        """Every option that can change an answer, models as the LLM cache knows them: its key."""
        key: dict[str, Any] = {}
        for name in option_names():
            if _marked(name, "changes_answers") is False:
                continue
            value = getattr(self, name)
            if name == "aggregation" and not isinstance(value, str):
                # By identity: two lambdas, closures or strategy objects may share a name, not answers.
                name_of = getattr(value, "__qualname__", type(value).__qualname__)
                value = f"{getattr(value, '__module__', '')}.{name_of}@{id(value):x}"
            elif name == "proposers":
                value = [_identity(m) for m in value]
            elif name == "aggregator":
                value = _identity(value)
            elif name == "agreement_embeddings" and value is not None:
                value = f"{type(value).__qualname__}@{id(value):x}"  # by identity, as a function strategy
            key[name] = value
        return key


def option_names() -> list[str]:
    """The names of every MoA option, in declaration order."""
    return list(MoAOptions.model_fields)


def per_request_options() -> list[str]:
    """The options a client of a server may set for one request: they shape how an answer is made,
    never which models run, how many calls at once, or how long anything may take."""
    return [name for name in option_names() if _marked(name, "per_request")]


def _marked(name: str, flag: str) -> Any:
    extra = MoAOptions.model_fields[name].json_schema_extra
    return extra.get(flag) if isinstance(extra, dict) else None


def describe(name: str) -> str:
    """The first sentence of an option's documentation (the ``moa`` command's help text uses it)."""
    description = " ".join((MoAOptions.model_fields[name].description or "").split()).replace("``", "")
    return re.split(r"(?<!e\.g)(?<! al)(?<!})\. ", description)[0].rstrip(".") + "."


def _identity(model: Any) -> str:
    """A model as LangChain's cache knows it: everything that makes it answer differently (its
    endpoint and settings too), secrets masked (core's own ``_get_llm_string``)."""
    return model if isinstance(model, str) else model._get_llm_string()
