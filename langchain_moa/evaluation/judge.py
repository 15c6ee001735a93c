"""MT-Bench single-answer grading with FastChat's judge prompts and any LangChain chat model as judge.

Scores print like FastChat's ``show_result``: the first turn, the second turn, and the average, per
category too. Reference answers (GPT-4's, shipped with the questions) are given for math, reasoning
and coding, as FastChat does.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from langchain_moa.evaluation.data import load_jsonl, mt_bench_file
from langchain_moa.evaluation.runner import Journal, failures_path, run_items

__all__ = ["NEED_REFERENCE", "judge_mt_bench", "mt_bench_scores", "parse_rating"]

NEED_REFERENCE = ("math", "reasoning", "coding")
"""Categories FastChat judges against a reference answer."""

_RATING = [re.compile(r"\[\[(\d+\.?\d*)\]\]"), re.compile(r"\[(\d+\.?\d*)\]"), re.compile(r"Rating: (\d+)")]


def parse_rating(judgment: str) -> float:
    """The score in a judgment (``[[7]]``, FastChat's format and its fallbacks); -1 when absent."""
    for pattern in _RATING:
        if match := pattern.search(judgment):
            return float(match.group(1))
    return -1.0


def _prompt(name: str, prompts: dict[str, dict[str, Any]], **fields: str) -> list[Any]:
    prompt = prompts[name]
    return [SystemMessage(prompt["system_prompt"]), HumanMessage(prompt["prompt_template"].format(**fields))]


async def judge_mt_bench(
    answers: list[dict[str, Any]],
    questions: list[dict[str, Any]],
    judge: BaseChatModel,
    output: Path,
    *,
    judge_prompts: Path | None = None,
    references: Path | None = None,
    num_proc: int = 4,
    show_progress: bool = True,
) -> list[dict[str, Any]]:
    """Grade each answer's two turns; judgments go to ``output`` (JSONL, resumable)."""
    prompts = {p["name"]: p for p in load_jsonl(judge_prompts or mt_bench_file("judge_prompts.jsonl"))}
    reference_rows = load_jsonl(references or mt_bench_file("mt_bench/reference_answer/gpt-4.jsonl"))
    reference = {r["question_id"]: r["choices"][0]["turns"] for r in reference_rows}
    by_id = {q["question_id"]: q for q in questions}
    jobs = [(a, turn) for a in answers for turn in (1, 2)]

    async def grade(job: tuple[dict[str, Any], int]) -> dict[str, Any]:
        answer, turn = job
        question = by_id[answer["question_id"]]
        q, a = question["turns"], answer["choices"][0]["turns"]
        math = question["category"] in NEED_REFERENCE
        name = ("single-math-v1" if math else "single-v1") + ("-multi-turn" if turn == 2 else "")
        fields = (
            {"question": q[0], "answer": a[0]}
            if turn == 1
            else {"question_1": q[0], "answer_1": a[0], "question_2": q[1], "answer_2": a[1]}
        )
        if math:
            ref = reference[answer["question_id"]]
            fields.update(
                {"ref_answer_1": ref[0]} if turn == 1 else {"ref_answer_1": ref[0], "ref_answer_2": ref[1]}
            )
        judgment = (await judge.ainvoke(_prompt(name, prompts, **fields), temperature=0)).text
        return {
            "key": f"{answer['question_id']}-{turn}",
            "question_id": answer["question_id"],
            "turn": turn,
            "category": question["category"],
            "model": answer["model_id"],
            "judge_prompt": name,
            "judgment": judgment,
            "score": parse_rating(judgment),
        }

    done = await run_items(
        jobs,
        lambda job: f"{job[0]['question_id']}-{job[1]}",
        grade,
        Journal(output, key="key"),
        failures=failures_path(output),
        num_proc=num_proc,
        description="judging",
        show_progress=show_progress,
    )
    return sorted(done.values(), key=lambda j: (j["question_id"], j["turn"]))


def mt_bench_scores(judgments: list[dict[str, Any]]) -> dict[str, float]:
    """Mean score by turn ("first turn", "second turn", "average") and by category (both turns)."""
    valid = [j for j in judgments if j["score"] >= 0]
    by: dict[str, list[float]] = defaultdict(list)
    for j in valid:
        by["first turn" if j["turn"] == 1 else "second turn"].append(j["score"])
        by["average"].append(j["score"])
        by[f"category: {j['category']}"].append(j["score"])
    return {name: sum(v) / len(v) for name, v in by.items()}
