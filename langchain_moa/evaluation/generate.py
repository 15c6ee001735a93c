"""Answers in the formats the paper's benchmarks read: AlpacaEval 2, MT-Bench (FastChat), FLASK."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from langchain_moa.chat_models import MoAChatModel
from langchain_moa.evaluation.data import flask_question
from langchain_moa.evaluation.runner import Journal, failures_path, run_items, write_atomically

__all__ = ["MT_BENCH_TEMPERATURES", "generate_alpaca_eval", "generate_flask", "generate_mt_bench"]

MT_BENCH_TEMPERATURES = {
    "writing": 0.7,
    "roleplay": 0.7,
    "extraction": 0.0,
    "math": 0.0,
    "coding": 0.0,
    "reasoning": 0.0,
    "stem": 0.1,
    "humanities": 0.1,
}
"""FastChat's sampling temperature for each MT-Bench category."""


async def generate_alpaca_eval(
    moa: MoAChatModel,
    instructions: list[dict[str, Any]],
    output: Path,
    *,
    generator: str,
    num_proc: int = 4,
    show_progress: bool = True,
) -> list[dict[str, Any]]:
    """Write AlpacaEval's model outputs: a JSON array of ``instruction``, ``output``, ``generator``,
    ``dataset``, in the instruction set's order (once every instruction is answered)."""
    journal = Journal(output.with_name(output.name + ".partial.jsonl"), key="index")

    async def answer(index: int) -> dict[str, Any]:
        row = instructions[index]
        reply = await moa.ainvoke([HumanMessage(row["instruction"])])
        return {"index": index, "output": _text(reply)}

    done = await run_items(
        range(len(instructions)),
        lambda i: i,
        answer,
        journal,
        failures=failures_path(output),
        num_proc=num_proc,
        description="AlpacaEval",
        show_progress=show_progress,
    )
    rows = [
        {
            "instruction": row["instruction"],
            "output": done[i]["output"],
            "generator": generator,
            "dataset": row.get("dataset", "alpaca_eval"),
        }
        for i, row in enumerate(instructions)
        if i in done
    ]
    if len(rows) == len(instructions):  # complete: the file AlpacaEval reads (the journal stays, for reruns)
        write_atomically(output, json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
    return rows


async def generate_mt_bench(
    moa: MoAChatModel,
    questions: list[dict[str, Any]],
    output: Path,
    *,
    model_id: str,
    num_proc: int = 4,
    show_progress: bool = True,
) -> list[dict[str, Any]]:
    """Write FastChat's answer JSONL: every turn re-runs MoA on the growing conversation."""

    async def answer(question: dict[str, Any]) -> dict[str, Any]:
        temperature = MT_BENCH_TEMPERATURES.get(question["category"], 0.7)
        conversation: list[BaseMessage] = []
        turns = []
        for turn in question["turns"]:
            conversation.append(HumanMessage(turn))
            reply = await moa.ainvoke(conversation, temperature=temperature)
            turns.append(_text(reply))
            conversation.append(AIMessage(turns[-1]))
        return {
            "question_id": question["question_id"],
            "answer_id": uuid.uuid4().hex,
            "model_id": model_id,
            "choices": [{"index": 0, "turns": turns}],
            "tstamp": time.time(),
        }

    done = await run_items(
        questions,
        lambda q: q["question_id"],
        answer,
        Journal(output, key="question_id"),
        failures=failures_path(output),
        num_proc=num_proc,
        description="MT-Bench",
        show_progress=show_progress,
    )
    return _rewrite_sorted(output, done)


async def generate_flask(
    moa: MoAChatModel,
    questions: list[dict[str, Any]],
    output: Path,
    *,
    num_proc: int = 4,
    show_progress: bool = True,
) -> list[dict[str, Any]]:
    """Write FLASK's answer JSONL: each input row, with what FLASK's scorer (``gpt4_eval.py``) reads of
    an answer: ``question_id`` (the row's ``idx`` in FLASK's current set) and ``text``, the answer (in
    the older set, ``text`` held the question)."""

    async def answer(row: dict[str, Any]) -> dict[str, Any]:
        question_id, question = flask_question(row)
        reply = await moa.ainvoke([HumanMessage(question)])
        return {**row, "question_id": question_id, "text": _text(reply)}

    done = await run_items(
        questions,
        lambda q: flask_question(q)[0],
        answer,
        Journal(output, key="question_id"),
        failures=failures_path(output),
        num_proc=num_proc,
        description="FLASK",
        show_progress=show_progress,
    )
    return _rewrite_sorted(output, done)


def _text(reply: AIMessage) -> str:
    text = reply.text
    if not text.strip():  # never written as an empty answer: the item is retried next run
        msg = "the model returned an empty answer"
        raise ValueError(msg)
    return text


def _rewrite_sorted(output: Path, done: dict[Hashable, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = [done[k] for k in sorted(done, key=lambda k: (str(type(k)), k))]  # type: ignore[arg-type]
    write_atomically(output, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return rows
