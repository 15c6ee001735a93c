"""Paying for MoA only where it helps: ``early_exit``, ``cascade`` and ``aggregation="confidence"``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.messages import AIMessage
from typer.testing import CliRunner

from langchain_moa import MoAChatModel, MoAConfigError, cli, observe
from langchain_moa.events import Agreed, Token
from langchain_moa.fakes import CallTally, Delayed, ScriptedChatModel


def _proposers(*answers: Any, tally: CallTally | None = None) -> list[ScriptedChatModel]:
    return [
        ScriptedChatModel(answer=a, model_name=f"p{i}", tally=tally or CallTally())
        for i, a in enumerate(answers, start=1)
    ]


def _aggregator() -> ScriptedChatModel:
    return ScriptedChatModel(answer="Answer: Z (synthesised)", model_name="agg")


# -- early_exit ----------------------------------------------------------------------------------


def test_agreeing_proposals_answer_without_the_aggregator() -> None:
    aggregator = _aggregator()
    proposers = _proposers(Delayed(0.05, "Answer: B, slowly"), "Answer: B, quickly", "Answer: C")
    moa = MoAChatModel(proposers=proposers, aggregator=aggregator, early_exit=0.6)
    answer = moa.invoke("Q")
    assert answer.text == "Answer: B, quickly"  # the first of the agreeing proposals to finish
    assert aggregator.calls == []
    record = answer.response_metadata["moa"]
    assert record["early_exit"] == {"layer": 1, "agreeing": [1, 2], "of": 3, "chosen": 2,
                                    "why": "the first of the agreeing proposals to finish", "answer": "B"}  # fmt: skip
    assert record["aggregator"]["called"] is False and record["cost"]["aggregator"] == 0.0
    assert answer.usage_metadata == {"input_tokens": 3, "output_tokens": 8, "total_tokens": 11}


def test_too_few_agreeing_proposals_leave_the_answer_to_the_aggregator() -> None:
    aggregator = _aggregator()
    moa = MoAChatModel(proposers=_proposers("Answer: B", "Answer: C", "no answer stated"), aggregator=aggregator,
                       early_exit=0.6)  # fmt: skip
    answer = moa.invoke("Q")
    assert answer.text == "Answer: Z (synthesised)" and len(aggregator.calls) == 1
    assert "early_exit" not in answer.response_metadata["moa"]


def test_a_failed_proposer_counts_as_not_agreeing() -> None:
    aggregator = _aggregator()
    proposers = _proposers("Answer: B", RuntimeError("down"), "Answer: C")
    moa = MoAChatModel(proposers=proposers, aggregator=aggregator, early_exit=0.5 + 1e-9)
    assert moa.invoke("Q").text == "Answer: Z (synthesised)"  # 1 of 3 agree, not a half
    both = MoAChatModel(proposers=_proposers("Answer: B", RuntimeError("down"), "Answer: B"), aggregator=_aggregator(),
                        early_exit=0.6)  # fmt: skip
    assert both.invoke("Q").response_metadata["moa"]["early_exit"]["of"] == 3


def test_an_agreeing_layer_skips_the_later_layers() -> None:
    tally = CallTally()
    aggregator = _aggregator()
    moa = MoAChatModel(proposers=_proposers("Answer: 42", "the answer is 42.0", "Answer: 7", tally=tally),
                       aggregator=aggregator, layers=3, early_exit=0.6)  # fmt: skip
    answer = moa.invoke("Q")
    record = answer.response_metadata["moa"]
    assert tally.finished == 3 and aggregator.calls == []  # layer 2 and the aggregator never ran
    assert [len(layer) for layer in record["layers"]] == [3]
    assert record["skipped"] == ["layer 2 #1 p1", "layer 2 #2 p2", "layer 2 #3 p3"]
    assert record["early_exit"]["answer"] == "42"


def test_the_exit_streams_the_chosen_proposal_and_says_so() -> None:
    seen: list[Any] = []
    proposers = _proposers("Answer: A. Because.", Delayed(0.05, "Answer: A"))
    moa = MoAChatModel(proposers=proposers, aggregator=_aggregator(), early_exit=1)
    with observe(seen.append):
        chunks = list(moa.stream("Q"))
    assert "".join(c.text for c in chunks) == "Answer: A. Because."
    agreed = [e for e in seen if isinstance(e, Agreed)]
    assert [(a.layer, a.agreeing, a.chosen, a.skipped) for a in agreed] == [(1, [1, 2], 1, ["aggregator"])]
    assert [e.chunk.text for e in seen if isinstance(e, Token)] == ["Answer: A. Because."]


def test_with_tools_bound_the_aggregator_still_answers_and_may_call_one() -> None:
    call = AIMessage("", tool_calls=[{"name": "lookup", "args": {"q": "x"}, "id": "c1"}])
    aggregator = ScriptedChatModel(answer=call, model_name="agg")
    moa = MoAChatModel(proposers=_proposers("Answer: B", "Answer: B"), aggregator=aggregator, early_exit=0.6)

    def lookup(q: str) -> str:
        """Look something up."""
        return q

    answer = moa.bind_tools([lookup]).invoke("Q")
    assert answer.tool_calls[0]["name"] == "lookup" and len(aggregator.calls) == 1
    assert answer.response_metadata["moa"]["early_exit"]["declined"].startswith("tools are bound")


def test_free_text_agrees_only_by_an_embedding_model() -> None:
    class Letters(Embeddings):
        """Texts about the same thing point the same way: a count of each letter."""

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [self.embed_query(t) for t in texts]

        def embed_query(self, text: str) -> list[float]:
            return [float(text.lower().count(c)) for c in "abcdefghijklmnopqrstuvwxyz"]

    texts = ("The sky is blue because of Rayleigh scattering.", "The sky is blue because of Rayleigh scattering!",
             "Bananas are yellow.")  # fmt: skip
    plain = MoAChatModel(proposers=_proposers(*texts), aggregator=_aggregator(), early_exit=0.6)
    assert plain.invoke("Q").text == "Answer: Z (synthesised)"
    aggregator = _aggregator()
    by_meaning = MoAChatModel(proposers=_proposers(*texts), aggregator=aggregator, early_exit=0.6,
                              agreement_embeddings=Letters(), agreement_threshold=0.95)  # fmt: skip
    answer = by_meaning.invoke("Q")
    assert answer.text in texts[:2] and aggregator.calls == []
    assert (
        answer.response_metadata["moa"]["early_exit"]["why"] == "the most central of the agreeing proposals"
    )


def test_an_embedding_model_that_fails_leaves_the_aggregator_to_decide() -> None:
    class Broken(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            raise ConnectionError("embedding server down")

        def embed_query(self, text: str) -> list[float]:
            raise ConnectionError("embedding server down")

    moa = MoAChatModel(proposers=_proposers("free text one", "free text two"), aggregator=_aggregator(),
                       early_exit=0.6, agreement_embeddings=Broken())  # fmt: skip
    answer = moa.invoke("Q")
    assert answer.text == "Answer: Z (synthesised)"
    assert answer.response_metadata["moa"]["early_exit"] == {
        "error": "ConnectionError: embedding server down"
    }


# -- cascade -------------------------------------------------------------------------------------


def test_a_cascade_asks_the_rest_only_when_the_first_disagree() -> None:
    first, rest = CallTally(), CallTally()
    proposers = [*_proposers("Answer: B", "Answer: B", tally=first), *_proposers("Answer: C", tally=rest)]
    aggregator = _aggregator()
    moa = MoAChatModel(proposers=proposers, aggregator=aggregator, cascade=2)
    answer = moa.invoke("Q")
    assert (first.finished, rest.finished) == (2, 0)
    record = answer.response_metadata["moa"]
    assert record["skipped"] == ["layer 1 #3 p1"] and [p["index"] for p in record["layers"][0]] == [1, 2]
    assert len(aggregator.calls) == 1  # without early_exit, the aggregator synthesises the two
    assert aggregator.calls[0]["messages"][0].content.endswith("\n1. Answer: B\n2. Answer: B")

    split = [*_proposers("Answer: B", "Answer: C", tally=first), *_proposers("Answer: C", tally=rest)]
    MoAChatModel(proposers=split, aggregator=_aggregator(), cascade=2).invoke("Q")
    assert rest.finished == 1  # they disagreed: the third ran


async def test_a_cascade_runs_the_rest_after_the_first_and_in_parallel_with_each_other() -> None:
    # Proved by what each call sees when it starts, not by a clock: a loaded machine cannot fail it.
    first, rest = CallTally(), CallTally()
    finished_first_when_rest_started: list[int] = []

    def later(messages: Any, kwargs: Any) -> str:
        finished_first_when_rest_started.append(first.finished)
        return "Answer: D"

    proposers = [
        *(ScriptedChatModel(answer=f"Answer: {c}", sleep=0.2, tally=first, model_name=c) for c in "AB"),
        *(ScriptedChatModel(respond=later, sleep=0.2, tally=rest, model_name=c) for c in "CD"),
    ]
    await MoAChatModel(proposers=proposers, aggregator=_aggregator(), cascade=2).ainvoke("Q")
    assert (first.peak, first.finished) == (2, 2)  # the first two at once
    assert finished_first_when_rest_started == [2, 2]  # the rest after them
    assert (rest.peak, rest.finished) == (2, 2)  # and at once with each other


def test_cascade_and_early_exit_together_answer_from_the_first_proposers() -> None:
    rest = CallTally()
    proposers = [*_proposers("Answer: D", "Answer: D"), *_proposers("Answer: A", "Answer: A", tally=rest)]
    aggregator = _aggregator()
    answer = MoAChatModel(proposers=proposers, aggregator=aggregator, cascade=2, early_exit=0.6).invoke("Q")
    assert answer.text == "Answer: D" and aggregator.calls == [] and rest.finished == 0
    assert answer.response_metadata["moa"]["early_exit"]["of"] == 2  # of those that ran


# -- confidence ----------------------------------------------------------------------------------


def test_confidence_picks_the_model_whose_samples_agree_most() -> None:
    steady = ScriptedChatModel(answers=["Answer: C", "Answer: C", "Answer: B"], model_name="steady")
    erratic = ScriptedChatModel(answers=["Answer: A", "Answer: B", "Answer: D"], model_name="erratic")
    aggregator = _aggregator()
    moa = MoAChatModel(proposers=[erratic, steady, erratic, steady, erratic, steady], aggregator=aggregator,
                       aggregation="confidence")  # fmt: skip
    answer = moa.invoke("Q")
    assert answer.text == "Answer: C" and aggregator.calls == []
    record = answer.response_metadata["moa"]["aggregation"]
    assert record["winner"] == "steady" and record["models"]["steady"] == {
        "answer": "C",
        "agreeing": 2,
        "of": 3,
    }
    assert record["models"]["erratic"]["agreeing"] == 1


@pytest.mark.parametrize(("prior", "winner"), [(None, "first"), ({"second": 0.6, "first": 0.4}, "second")])
def test_confidence_ties_go_to_the_prior_else_the_proposers_order(prior: dict | None, winner: str) -> None:
    first = ScriptedChatModel(answers=["Answer: A", "Answer: A"], model_name="first")
    second = ScriptedChatModel(answers=["Answer: B", "Answer: B"], model_name="second")
    moa = MoAChatModel(proposers=[first, second, first, second], aggregator=_aggregator(),
                       aggregation="confidence", confidence_prior=prior)  # fmt: skip
    assert moa.invoke("Q").response_metadata["moa"]["aggregation"]["winner"] == winner


# -- bad values, before any model runs ------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"early_exit": 0.5}, "early_exit must be a share in (0.5, 1], e.g. 0.67, or unset (off), got 0.5"),
        ({"early_exit": 1.5}, "early_exit must be a share in (0.5, 1]"),
        ({"early_exit": "most"}, "early_exit must be a share in (0.5, 1]"),
        ({"cascade": 0}, "cascade must be an integer >= 1, or unset (all at once), got 0"),
        ({"cascade": 4}, "cascade must be between min_proposals (1) and the number of proposers (3), got 4"),
        ({"cascade": 1, "min_proposals": 2}, "cascade must be between min_proposals (2)"),
        ({"max_cost": 0}, "max_cost must be a positive number of US dollars, or unset, got 0"),
        ({"max_cost": True}, "max_cost must be a positive number"),
        ({"confidence_prior": {"p1": 0.5}}, "confidence_prior is the tie-break of aggregation='confidence'"),
        ({"aggregation": "confidence", "confidence_prior": {"p1": "high"}}, "confidence_prior must be a mapping"),
        ({"early_exit": 0.67, "staircase": 8}, "early_exit cannot be combined with staircase"),
        ({"cascade": 2, "staircase": 8}, "cascade cannot be combined with staircase"),
        ({"agreement_embeddings": "openai"}, "agreement_embeddings must be a LangChain Embeddings"),
        ({"prices": {"p1": {"input": 1}}}, "prices must be a mapping of model name to {'input': $, 'output': $}"),
    ],
)  # fmt: skip
def test_bad_values_name_the_value_and_the_fix(fields: dict[str, Any], message: str) -> None:
    tally = CallTally()
    with pytest.raises(MoAConfigError) as raised:
        MoAChatModel(proposers=_proposers("a", "b", "c", tally=tally), aggregator=_aggregator(), **fields)
    assert str(raised.value).startswith(message)
    assert tally.finished == 0


# -- replayed on journalled proposals (moa eval exact --strategies) --------------------------------


def test_exact_replays_the_rules_on_the_same_proposals_and_they_match_the_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = {"p1": "Answer: 42", "p2": "The answer is 42.", "p3": "Answer: 41"}
    made: dict[str, list[ScriptedChatModel]] = {}

    def resolve(spec: Any, **_: Any) -> Any:
        if not isinstance(spec, str):
            return spec
        model = ScriptedChatModel(answer=answers.get(spec, "Answer: 41"), model_name=spec)
        made.setdefault(spec, []).append(model)
        return model

    monkeypatch.setattr("langchain_moa.graph.resolve_chat_model", resolve)
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        "".join(json.dumps({"question": f"6*7? ({i})", "answer": "42"}) + "\n" for i in range(3))
    )
    rules = "early_exit=0.6,cascade=2+early_exit=1,cascade=2+early_exit=1+confidence,confidence"
    args = ["eval", "exact", "--questions", str(questions), "-o", str(tmp_path / "out.jsonl"), "--quiet",
            "--reference-models", "p1,p2,p3", "--aggregator", "agg", "--strategies", rules]  # fmt: skip
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    rows = {line.split("\t")[0]: line.split("\t") for line in result.stdout.splitlines()}
    assert rows["MoA"][1].startswith("0.0%")  # the aggregator says 41
    for rule in rules.split(","):
        assert rows[f"MoA ({rule})"][1].startswith("100.0%"), rule  # 2 of 3 agree on 42
    journal = [
        json.loads(line) for line in (tmp_path / "out.jsonl.strategies.jsonl").read_text().splitlines()
    ]
    by_rule = {r["key"].split("|")[1]: r for r in journal if r["key"].startswith("0|")}
    cascade = by_rule["cascade=2+early_exit=1"]["note"]
    assert (cascade["ran"], cascade["of"], cascade["exit"]["agreeing"]) == (
        2,
        3,
        [1, 2],
    )  # the third never ran
    assert by_rule["early_exit=0.6"]["note"]["exit"]["agreeing"] == [1, 2]
    assert sum(len(m.calls) for m in made["agg"]) == 3  # the standard MoA's; no replay called it
    # The graph decides as the replay did.
    graph = MoAChatModel(proposers=["p1", "p2", "p3"], aggregator="agg", cascade=2, early_exit=1.0)
    assert graph.invoke("6*7?").response_metadata["moa"]["early_exit"]["agreeing"] == [1, 2]


@pytest.mark.parametrize(
    "spec", ["early_exit=0.5", "cascade=0", "cascade=2+early_exit=2", "early_exit=0.7+vote"]
)
def test_an_unknown_replay_is_refused_naming_what_exists(spec: str) -> None:
    from langchain_moa.evaluation.replays import check_strategies

    with pytest.raises(MoAConfigError, match=r"unknown aggregation .*cascade=K\+early_exit=S"):
        check_strategies([spec])


# -- every option everywhere ---------------------------------------------------------------------


def test_a_configuration_file_and_a_served_configuration_carry_the_adaptive_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, introspection: object
) -> None:
    from langchain_moa.config_file import load_config
    from langchain_moa.langgraph_app import MoAConfiguration, make_graph

    path = tmp_path / "moa.toml"
    path.write_text('early_exit = 0.67\ncascade = 2\nmax_cost = 0.05\naggregation = "confidence"\n'
                    '[confidence_prior]\n"a/x" = 0.4\n[prices."a/x"]\ninput = 0.1\noutput = 0.2\n'
                    '[[proposers]]\nprovider = "together"\nmodel = "a/x"\n[[proposers]]\nprovider = "together"\n'
                    'model = "a/x"\n[aggregator]\nprovider = "together"\nmodel = "a/y"\n')  # fmt: skip
    monkeypatch.setenv("TOGETHER_API_KEY", "k")
    fields = load_config(path)
    assert (fields["early_exit"], fields["cascade"], fields["max_cost"]) == (0.67, 2, 0.05)
    assert fields["prices"] == {"a/x": {"input": 0.1, "output": 0.2}}
    path.write_text(path.read_text().replace("early_exit = 0.67", "early_exit = 0.4"))
    with pytest.raises(MoAConfigError, match=r"moa.toml:1: early_exit must be a share in \(0.5, 1\]"):
        load_config(path)

    assert {"early_exit", "cascade", "max_cost", "prices", "confidence_prior"} <= set(
        MoAConfiguration.model_fields
    )
    served = {"preset": "together", "cascade": 2, "early_exit": 0.67}
    edges = {
        (e.source, e.target)
        for e in make_graph({"configurable": served}, runtime=introspection).get_graph().edges
    }
    assert any(
        source.startswith("layer 1 #1") and target.startswith("layer 1 #3") for source, target in edges
    )
    with pytest.raises(MoAConfigError, match="cascade must be between"):
        make_graph({"configurable": {**served, "cascade": 9}}, runtime=introspection)
