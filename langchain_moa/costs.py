"""What a MoA call costs in US dollars, and the limit a caller may put on it (``max_cost``).

Prices come from a maintained price table, pydantic's ``genai-prices`` (its bundled snapshot: nothing is
downloaded at run time), looked up by each model's provider (LangChain's ``ls_provider``) and name, or
by its endpoint when it has one of its own (``base_url``). The ``prices`` option gives the price of a
model the table does not know (a local model, a private endpoint) and overrides the table. A model
with no price, or a call that reported no usage, costs an unknown amount: never zero, and the total is
then unknown too.

``max_cost`` bounds a call's worst case before any model runs: every proposer writes its token limit,
every prompt holds the whole conversation (its characters / 3 tokens, more than English text takes)
plus, from the second layer on and for the aggregator, every proposal of the layer before at its limit.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from langchain_moa.errors import MoAConfigError
from langchain_moa.models import endpoint_of, model_label

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage
    from langchain_core.messages.ai import UsageMetadata

    from langchain_moa.options import MoAOptions
    from langchain_moa.state import Proposal

__all__ = ["BudgetExceeded", "Price", "Pricer", "check_budget"]

CHARACTERS_PER_TOKEN = 3
"""For the worst case only: fewer characters per token than English text has (about 4), so the
estimate of a prompt's tokens is high, never low."""


class BudgetExceeded(MoAConfigError):
    """A call whose worst case costs more than ``max_cost`` (refused before any model runs)."""


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: float
    output: float
    source: str

    def of(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input + output_tokens * self.output) / 1e6


@functools.cache
def _table_version() -> str:
    return f"genai-prices {version('genai-prices')}"


@functools.cache
def _table_price(provider: str | None, model: str, endpoint: str | None) -> Price | None:
    """The price table's price of ``model`` (``None``: the table does not know it)."""
    from datetime import UTC, datetime

    from genai_prices import data_snapshot
    from genai_prices.types import TieredPrices

    try:  # by the endpoint when the model has its own (a private one matches no provider), else by name
        _, found = data_snapshot.get_snapshot().find_provider_model(
            model, None, None if endpoint else provider, endpoint
        )
    except LookupError:
        return None
    prices = found.get_prices(datetime.now(UTC))

    def highest(price: Any) -> float | None:  # a tiered price at its highest tier: never an underestimate
        if isinstance(price, TieredPrices):
            return float(max([price.base, *(tier.price for tier in price.tiers)]))
        return None if price is None else float(price)

    per_input, per_output = highest(prices.input_mtok), highest(prices.output_mtok)
    if per_input is None or per_output is None:
        return None
    return Price(per_input, per_output, _table_version())


class Pricer:
    """The prices of one MoA's models, and what each call cost."""

    def __init__(self, prices: Mapping[str, Mapping[str, float]] | None = None) -> None:
        self.prices = {
            name: Price(p["input"], p["output"], "prices option") for name, p in (prices or {}).items()
        }
        # By identity, the model held: its id cannot be reused by another model while it is known here.
        self._known: dict[int, tuple[BaseChatModel, Price | None]] = {}

    def price(self, model: BaseChatModel) -> Price | None:
        """``model``'s price: the ``prices`` option's, else the table's, else ``None`` (unknown)."""
        if (key := id(model)) not in self._known:
            self._known[key] = (model, self._look_up(model))
        return self._known[key][1]

    def _look_up(self, model: BaseChatModel) -> Price | None:
        label = model_label(model)
        if (given := self.prices.get(label)) is not None:
            return given
        params = model._get_ls_params()
        provider, name = params.get("ls_provider"), params.get("ls_model_name") or label
        endpoint = endpoint_of(model)
        return _table_price(provider, str(name), endpoint)

    def cost(self, model: BaseChatModel, usage: UsageMetadata | None) -> float | None:
        """What one call cost (``None`` when its price or its usage is unknown)."""
        if usage is not None and usage.get("total_cost") == 0:  # core's mark of a cache hit: nothing spent
            return 0.0
        if usage is None or (price := self.price(model)) is None:
            return None
        return price.of(usage["input_tokens"], usage["output_tokens"])

    def record(
        self,
        layers: Sequence[Sequence[Proposal]],
        models: Mapping[str, BaseChatModel],
        aggregator: BaseChatModel,
        aggregator_usage: UsageMetadata | None,
        aggregator_called: bool,
    ) -> dict[str, Any]:
        """``response_metadata["moa"]["cost"]``: each proposer's and the aggregator's cost and the total,
        in US dollars (``None`` where unknown, and the total then too) and the prices' sources."""
        proposers: dict[str, float | None] = {}
        for proposal in (p for layer in layers for p in layer):
            spent = proposal["usage"] is not None or proposal["content"] is not None
            cost = self.cost(models[proposal["node"]], proposal["usage"]) if spent else 0.0
            proposers[proposal["node"]] = _round(cost)
        agg = self.cost(aggregator, aggregator_usage) if aggregator_called else 0.0
        costs = [*proposers.values(), agg]
        total = None if any(c is None for c in costs) else _round(sum(c or 0.0 for c in costs))
        used = [*(models[n] for n in proposers), *([aggregator] if aggregator_called else [])]
        unknown = sorted({model_label(m) for m in used if self.price(m) is None})
        sources = sorted({p.source for m in used if (p := self.price(m)) is not None})
        record: dict[str, Any] = {"currency": "USD", "proposers": proposers, "aggregator": _round(agg),
                                  "total": total, "sources": sources}  # fmt: skip
        return record | ({"unknown_prices": unknown} if unknown else {})


def _round(cost: float | None) -> float | None:
    return None if cost is None else round(cost, 8)


def check_budget(
    options: MoAOptions,
    proposers: Sequence[BaseChatModel],
    aggregator: BaseChatModel,
    messages: Sequence[BaseMessage],
    pricer: Pricer,
) -> float:
    """The call's worst-case cost in US dollars, when ``max_cost`` allows it.

    Raises:
        BudgetExceeded: the worst case exceeds ``max_cost``, or cannot be bounded (no token limit,
            a model without a price), naming the estimate, the limit and the fix.
    """
    limit = options.max_cost
    assert limit is not None
    answer_limit = options.max_tokens
    proposal_limit = options.proposer_max_tokens or answer_limit
    layers = options.layers - 1
    if answer_limit is None or (layers and proposal_limit is None):
        msg = (
            f"max_cost={limit} needs a bound on every answer's length: set max_tokens (and "
            "proposer_max_tokens for shorter proposals)"
        )
        raise BudgetExceeded(msg)
    unpriced = [
        model_label(m) for m in [*(proposers if layers else []), aggregator] if pricer.price(m) is None
    ]
    if unpriced:
        msg = (
            f"max_cost={limit} cannot be checked: no price for {', '.join(dict.fromkeys(unpriced))}; "
            "give it in prices={'<model>': {'input': <$ per million>, 'output': <$ per million>}}"
        )
        raise BudgetExceeded(msg)
    conversation = _tokens(sum(len(m.text) + 16 for m in messages))  # a few tokens of framing each
    references = _tokens(len(options.aggregator_prompt)) + len(proposers) * (proposal_limit or 0)
    worst = 0.0
    for layer in range(1, layers + 1):
        prompt = conversation + (references if layer > 1 else 0)
        worst += sum(_price(pricer, m).of(prompt, proposal_limit or 0) for m in proposers)
    worst += _price(pricer, aggregator).of(conversation + (references if layers else 0), answer_limit)
    if worst > limit:
        msg = (
            f"max_cost: this call may cost up to ${worst:.6f} (every model at its token limit), more than "
            f"max_cost=${limit}: raise max_cost, or lower max_tokens or proposer_max_tokens, or use "
            "fewer proposers or layers"
        )
        raise BudgetExceeded(msg)
    return worst


def _price(pricer: Pricer, model: BaseChatModel) -> Price:
    price = pricer.price(model)
    assert price is not None  # checked by ``check_budget``
    return price


def _tokens(characters: int) -> int:
    return math.ceil(characters / CHARACTERS_PER_TOKEN)
