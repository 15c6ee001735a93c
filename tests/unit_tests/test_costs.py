"""What a call costs in US dollars (``langchain_moa.costs``), and ``max_cost``."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from langchain_openai import ChatOpenAI
from langchain_together import ChatTogether
from typer.testing import CliRunner

from langchain_moa import MoAChatModel, cli
from langchain_moa.costs import BudgetExceeded, Pricer
from langchain_moa.fakes import CallTally, ScriptedChatModel
from langchain_moa.server.app import create_app
from langchain_moa.server.registry import ModelRegistry

PRICES = {"p": {"input": 1.0, "output": 2.0}, "agg": {"input": 3.0, "output": 4.0}}


def _moa(tally: CallTally | None = None, **fields: Any) -> MoAChatModel:
    tally = tally or CallTally()
    proposers = [ScriptedChatModel(answer="one two", model_name="p", tally=tally) for _ in range(2)]
    return MoAChatModel(proposers=proposers, aggregator=ScriptedChatModel(answer="x y z", model_name="agg",
                                                                           tally=tally), **fields)  # fmt: skip


def test_the_price_table_prices_a_provider_model_and_not_a_private_endpoint() -> None:
    pricer = Pricer()
    together = pricer.price(ChatTogether(model="meta-llama/Llama-3.3-70B-Instruct-Turbo", api_key="k"))
    assert together is not None and (together.input, together.output) == (0.88, 0.88)
    assert together.source.startswith("genai-prices ")
    assert pricer.price(ChatOpenAI(model="gpt-4o-mini", api_key="k")) is not None
    # The same name on a server of one's own is not OpenAI's price, and a local model has none.
    assert (
        pricer.price(ChatOpenAI(model="gpt-4o-mini", api_key="k", base_url="http://127.0.0.1:9/v1")) is None
    )
    assert pricer.price(ScriptedChatModel(model_name="qwen2.5-coder-0.5b")) is None
    given = Pricer({"qwen2.5-coder-0.5b": {"input": 0.0, "output": 0.0}})
    assert given.price(ScriptedChatModel(model_name="qwen2.5-coder-0.5b")) is not None


def test_each_call_is_priced_and_summed() -> None:
    answer = _moa(prices=PRICES).invoke("question")
    cost = answer.response_metadata["moa"]["cost"]
    layer = answer.response_metadata["moa"]["layers"][0]
    expected = [(p["usage"]["input_tokens"] * 1.0 + p["usage"]["output_tokens"] * 2.0) / 1e6 for p in layer]
    assert list(cost["proposers"].values()) == pytest.approx(expected)
    aggregator = answer.response_metadata["moa"]["aggregator"]["usage"]
    assert cost["aggregator"] == pytest.approx(
        (aggregator["input_tokens"] * 3 + aggregator["output_tokens"] * 4) / 1e6
    )
    assert cost["total"] == pytest.approx(sum(expected) + cost["aggregator"])
    assert cost["currency"] == "USD" and cost["sources"] == ["prices option"]


def test_an_unknown_price_is_unknown_never_zero() -> None:
    cost = _moa(prices={"p": PRICES["p"]}).invoke("question").response_metadata["moa"]["cost"]
    assert cost["aggregator"] is None and cost["total"] is None and cost["unknown_prices"] == ["agg"]
    assert all(c is not None and c > 0 for c in cost["proposers"].values())


def test_a_call_over_max_cost_is_refused_before_any_model_runs() -> None:
    tally = CallTally()
    moa = _moa(tally, prices=PRICES, max_tokens=100, max_cost=0.0001)
    with pytest.raises(BudgetExceeded, match=r"may cost up to \$0\.00\d+ .* more than max_cost=\$0\.0001"):
        moa.invoke("question " * 200)
    assert tally.finished == 0
    assert _moa(prices=PRICES, max_tokens=100, max_cost=0.01).invoke("question").text == "x y z"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"prices": PRICES}, "max_cost=0.01 needs a bound on every answer's length: set max_tokens"),
        ({"max_tokens": 10}, "max_cost=0.01 cannot be checked: no price for p, agg; give it in prices="),
    ],
)
def test_a_budget_that_cannot_be_checked_is_refused(fields: dict[str, Any], message: str) -> None:
    tally = CallTally()
    with pytest.raises(BudgetExceeded, match=message):
        _moa(tally, max_cost=0.01, **fields).invoke("question")
    assert tally.finished == 0


async def test_the_server_reports_the_cost_and_refuses_a_budget_naming_the_field() -> None:
    tally = CallTally()
    app = create_app(ModelRegistry({"m": lambda: _moa(tally, prices=PRICES, max_tokens=50, max_cost=0.01)}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:

        async def post(**fields: Any) -> httpx.Response:
            body = {"model": "m", "messages": [{"role": "user", "content": "question"}], **fields}
            return await http.post("/v1/chat/completions", json=body)

        answered = (await post()).json()
        assert answered["usage"]["cost_usd"] == pytest.approx(answered["moa"]["cost"]["total"])
        finished = tally.finished
        over = await post(moa={"max_cost": 1e-9})
        assert over.status_code == 400 and over.json()["error"]["param"] == "moa.max_cost"
        raised = await post(moa={"max_cost": 5})
        assert raised.status_code == 400 and "at most the server's 0.01" in raised.json()["error"]["message"]
        assert tally.finished == finished  # no model ran for either


def test_the_command_line_says_what_an_answer_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    def resolve(spec: Any, **_: Any) -> Any:
        if not isinstance(spec, str):
            return spec
        name = spec.split(":", 1)[-1]
        return ScriptedChatModel(answer="Answer: B" if name != "agg" else "synthesised", model_name=name)

    monkeypatch.setattr("langchain_moa.graph.resolve_chat_model", resolve)
    prices = json.dumps(PRICES)
    args = ["Q", "--reference-models", "p,p", "--aggregator", "agg", "--prices", prices]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    assert re.search(r"^\d+ tokens · \$0\.000\d+$", result.output, re.MULTILINE), result.output
    agreed = CliRunner().invoke(cli.app, [*args, "--early-exit", "0.6", "--json"])
    record = json.loads(agreed.stdout)
    assert record["answer"] == "Answer: B" and record["early_exit"]["chosen"] in (1, 2)
    assert record["cost"]["aggregator"] == 0.0
    unpriced = CliRunner().invoke(cli.app, [*args[:-2], "--prices", json.dumps({"p": PRICES["p"]})])
    assert "tokens · cost unknown (no price for agg: --prices)" in unpriced.output  # never $0
    bad = CliRunner().invoke(cli.app, [*args, "--early-exit", "0.4"])
    assert bad.exit_code == 2 and "early_exit must be a share in (0.5, 1]" in bad.output


def test_the_exact_match_journal_holds_each_calls_cost(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def resolve(spec: Any, **_: Any) -> Any:
        return spec if not isinstance(spec, str) else ScriptedChatModel(answer="Answer: 4", model_name=spec)

    monkeypatch.setattr("langchain_moa.graph.resolve_chat_model", resolve)
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question": "2+2?", "answer": "4"}) + "\n")
    out = tmp_path / "out.jsonl"
    args = ["eval", "exact", "--questions", str(questions), "-o", str(out), "--quiet", "--reference-models", "p,p",
            "--aggregator", "agg", "--prices", json.dumps(PRICES)]  # fmt: skip
    assert CliRunner().invoke(cli.app, args).exit_code == 0
    record = json.loads(out.read_text())["moa"]
    assert record["cost_usd"] > 0 and all(p["cost_usd"] > 0 for p in record["proposals"])
    assert record["cost_usd"] > sum(p["cost_usd"] for p in record["proposals"])  # the aggregator's too
