"""What `moa eval` writes, read by the benchmarks' own code: alpaca_eval's loader, FastChat's answer
loader, data check and match builder, and the fields FLASK's scorer reads; journals that survive a kill."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from langchain_moa import MoAChatModel, cli
from langchain_moa.evaluation import generate_alpaca_eval, generate_flask
from langchain_moa.evaluation.runner import Journal, run_items
from langchain_moa.fakes import ScriptedChatModel
from tests.real_tools import fastchat_llm_judge

runner = CliRunner()


def _moa(respond: Any = None) -> MoAChatModel:
    answer = respond or (lambda messages, _: f"answer to {messages[-1].text}")
    return MoAChatModel(
        proposers=[ScriptedChatModel(answer="idea", model_name="p")],
        aggregator=ScriptedChatModel(respond=answer, model_name="agg"),
    )


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Model strings of the command line resolve to scripted models (an answer that echoes the question;
    a question containing 'broken' fails)."""

    def resolve(spec: Any, **_: Any) -> Any:
        if not isinstance(spec, str):
            return spec

        def respond(messages: list, _: dict) -> Any:
            text = messages[-1].text
            return RuntimeError("provider down") if "broken" in text else f"answer to {text}"

        return ScriptedChatModel(respond=respond, model_name=spec.split(":")[-1])

    monkeypatch.setattr("langchain_moa.graph.resolve_chat_model", resolve)
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)


def test_alpaca_eval_reads_the_outputs_with_the_generator_name_of_what_ran(
    tmp_path: Path, scripted: None
) -> None:
    from alpaca_eval import utils

    instructions = tmp_path / "instructions.json"
    instructions.write_text(
        json.dumps([{"instruction": f"task {i}", "dataset": "helpful_base"} for i in range(3)])
    )
    output = tmp_path / "outputs.json"
    args = ["eval", "alpaca-eval", "--instructions", str(instructions), "-o", str(output), "--quiet",
            "--reference-models", "p1,p2", "--aggregator", "org/Big-Model:v1"]  # fmt: skip
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    assert "local preset" not in result.stderr  # no local model ran, and nobody says one did
    frame = utils.load_or_convert_to_dataframe(output)
    assert list(frame["instruction"]) == ["task 0", "task 1", "task 2"]
    assert list(frame["output"]) == ["answer to task 0", "answer to task 1", "answer to task 2"]
    assert utils.get_generator_name(None, frame) == "moa-big-model-v1-2p-2l-771cda"
    named = runner.invoke(cli.app, [*args, "--name", "my-moa", "-o", str(tmp_path / "named.json")])
    assert named.exit_code == 0, named.output
    assert (
        utils.get_generator_name(None, utils.load_or_convert_to_dataframe(tmp_path / "named.json"))
        == "my-moa"
    )


def test_fastchat_judges_the_answer_folder_as_one_model_named_after_the_configuration(
    tmp_path: Path, scripted: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    fastchat = fastchat_llm_judge()
    questions_file = tmp_path / "question.jsonl"
    questions = [
        {"question_id": 81, "category": "writing", "turns": ["Write a poem.", "Shorter."]},
        {"question_id": 111, "category": "math", "turns": ["2+2?", "Times 3?"]},
        {"question_id": 131, "category": "stem", "turns": ["What is DNA? broken", "And RNA?"]},
    ]
    questions_file.write_text("".join(json.dumps(q) + "\n" for q in questions))
    monkeypatch.chdir(tmp_path)
    args = ["eval", "mt-bench", "--questions", str(questions_file), "--quiet",
            "--reference-models", "p1", "--aggregator", "agg"]  # fmt: skip
    first = runner.invoke(cli.app, args)
    assert first.exit_code == 1  # one question failed: said, and retried by the next run
    assert "1 items failed" in first.stderr
    answer_dir = tmp_path / "data/mt_bench/model_answer"
    # The failures are listed beside the answers, where FastChat does not look for models.
    assert fastchat.get_model_list(str(answer_dir)) == ["moa-agg-1p-2l-315e9f"]
    answers = fastchat.load_model_answers(str(answer_dir))
    assert sorted(answers["moa-agg-1p-2l-315e9f"]) == [81, 111]

    questions_file.write_text(questions_file.read_text().replace(" broken", ""))
    second = runner.invoke(cli.app, args)
    assert second.exit_code == 0, second.output
    models = fastchat.get_model_list(str(answer_dir))
    answers = fastchat.load_model_answers(str(answer_dir))
    loaded = fastchat.load_questions(str(questions_file), None, None)
    judges = {"default": fastchat.Judge("gpt-4", {"name": "single-v1"})}
    fastchat.check_data(loaded, answers, {}, models, judges)  # raises when anything is missing
    matches = fastchat.make_match_single(loaded, models, answers, judges["default"])
    assert [(m.model, m.answer["question_id"]) for m in matches] == [
        ("moa-agg-1p-2l-315e9f", q) for q in (81, 111, 131)
    ]
    assert all(
        m.answer["model_id"] == "moa-agg-1p-2l-315e9f" and len(m.answer["choices"][0]["turns"]) == 2
        for m in matches
    )


CURRENT_FLASK = [  # FLASK's evaluation set since December 2023
    {"idx": 1, "instruction": "Rewrite it concisely.", "answer": "Short.", "task": "Self-instruct",
     "skill": ["Conciseness"], "domain": ["Language"], "difficulty": "simple lifestyle knowledge"},
    {"idx": 2, "instruction": "Name a prime.", "answer": "2", "task": "Self-instruct",
     "skill": ["Logical Correctness"], "domain": ["Math"], "difficulty": "formal education knowledge"},
]  # fmt: skip
OLDER_FLASK = [{"question_id": 7, "text": "What is DNA?", "answer": "A molecule.", "metrics": ["Factuality"]}]


@pytest.mark.parametrize("rows", [CURRENT_FLASK, OLDER_FLASK])
def test_flask_answers_carry_every_input_field_and_what_its_scorer_reads(
    tmp_path: Path, rows: list[dict]
) -> None:
    output = tmp_path / "flask.jsonl"
    asyncio.run(generate_flask(_moa(), rows, output, show_progress=False))
    answers = [json.loads(line) for line in output.read_text().splitlines()]
    for question in rows:
        # FLASK's gpt4_eval.py: the answer row whose question_id is the question's idx; its text.
        question_id = question.get("idx", question.get("question_id"))
        (answer,) = [a for a in answers if a.get("question_id") == question_id]
        asked = question.get("instruction", question.get("text"))
        assert answer["text"] == f"answer to {asked}"
        assert {k: v for k, v in answer.items() if k != "text"} == {
            **{k: v for k, v in question.items() if k != "text"},
            "question_id": question_id,
        }


def test_an_unknown_flask_layout_is_one_line_naming_the_fields(tmp_path: Path, scripted: None) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"id": 1, "prompt": "?"}) + "\n")
    result = runner.invoke(cli.app, ["eval", "flask", "--questions", str(questions), "-o", str(tmp_path / "o.jsonl"),
                                     "--reference-models", "p", "--aggregator", "agg", "--quiet"])  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "moa: error: a FLASK row needs 'idx' and 'instruction' (FLASK's current evaluation set) or "
        "'question_id' and 'text' (the older one); this one has ['id', 'prompt']"
    ]


@pytest.mark.parametrize("content", ["{not json", '{"a": 1}\n[oops'])
def test_a_malformed_question_file_is_one_line(tmp_path: Path, scripted: None, content: str) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text(content)
    result = runner.invoke(cli.app, ["eval", "flask", "--questions", str(questions), "--quiet",
                                     "--reference-models", "p", "--aggregator", "agg"])  # fmt: skip
    assert result.exit_code == 2 and "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"moa: error: {questions} is not JSON Lines")


def test_a_torn_journal_line_is_repaired_and_every_record_is_readable(tmp_path: Path) -> None:
    journal_path = tmp_path / "answers.jsonl"
    whole = [{"question_id": i, "text": f"a{i}"} for i in (1, 2)]
    journal_path.write_text("".join(json.dumps(r) + "\n" for r in whole) + '{"question_id": 3, "te')  # killed
    journal = Journal(journal_path, key="question_id")
    answered: list[int] = []

    async def answer(item: int) -> dict[str, Any]:
        answered.append(item)
        return {"question_id": item, "text": f"a{item}"}

    done = asyncio.run(
        run_items(
            [1, 2, 3, 4], lambda i: i, answer, journal, failures=tmp_path / "f.json", show_progress=False
        )
    )
    assert sorted(answered) == [3, 4]  # the torn record was done again
    on_disk = [json.loads(line) for line in journal_path.read_text().splitlines()]  # every line parses
    assert sorted(r["question_id"] for r in on_disk) == [1, 2, 3, 4] == sorted(done)
    assert journal.read() == {r["question_id"]: r for r in on_disk}


def test_generate_alpaca_eval_outputs_load_in_alpaca_eval(tmp_path: Path) -> None:
    from alpaca_eval import utils

    output = tmp_path / "o.json"
    rows = [{"instruction": "Say hi.", "dataset": "oasst"}]
    asyncio.run(generate_alpaca_eval(_moa(), rows, output, generator="g", show_progress=False))
    frame = utils.load_or_convert_to_dataframe(output)
    assert frame.to_dict("records") == [
        {"instruction": "Say hi.", "output": "answer to Say hi.", "generator": "g", "dataset": "oasst"}
    ]


def test_mt_bench_grades_go_beside_the_answer_folder_never_into_it(tmp_path: Path) -> None:
    from langchain_moa.cli.evaluate import _judgments_path

    fastchat = fastchat_llm_judge()
    answers = tmp_path / "data/mt_bench/model_answer/moa-x.jsonl"
    answers.parent.mkdir(parents=True)
    answers.write_text(json.dumps({"question_id": 81, "model_id": "moa-x", "choices": []}) + "\n")
    grades = _judgments_path(answers)
    assert grades == tmp_path / "data/mt_bench/model_judgment/moa-x.jsonl"
    grades.parent.mkdir(parents=True)
    grades.write_text("{}\n")
    assert fastchat.get_model_list(str(answers.parent)) == ["moa-x"]
    assert _judgments_path(tmp_path / "mt.jsonl") == tmp_path / "mt.judgments.jsonl"
