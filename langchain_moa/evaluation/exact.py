"""Does MoA beat your best single model on your own questions, and at what cost?

One MoA run per question yields every configuration at once: each proposer alone (its layer-1
proposal), the majority vote of the layer-1 proposals, and MoA itself; ``self_moa`` adds a Self-MoA of
the first proposer. Answers are matched after normalisation: numbers by value (a stated number, else
the last one: ``answers.number_answer``), multiple-choice letters by ``answers.choice_letter``, strings
case- and punctuation-insensitively. Each accuracy comes with its 95% interval, and each configuration is
compared with the best single proposer and the majority vote by McNemar's exact test on the same
questions.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage

from langchain_moa.answers import NUMBER, choice_letter, normalize, number_answer
from langchain_moa.chat_models import MoAChatModel
from langchain_moa.errors import MoAConfigError
from langchain_moa.evaluation.runner import Journal, failures_path, run_items
from langchain_moa.evaluation.statistics import mcnemar, wilson_interval

__all__ = [
    "ConfigurationScore",
    "baselines",
    "matches",
    "report",
    "run_exact",
    "score_exact",
]


def matches(prediction: str | None, gold: str) -> bool:
    """Whether ``prediction`` gives the ``gold`` answer (by value for numbers; for a multiple-choice
    letter, by ``answers.choice_letter``)."""
    if prediction is None:
        return False
    if re.fullmatch(r"[A-J]", gold.strip()):
        return choice_letter(prediction) == gold.strip()
    gold_number = number_answer(gold) if NUMBER.fullmatch(gold.strip()) else None
    if gold_number is not None:
        return number_answer(prediction) == gold_number
    gold_text, lines = (
        normalize(gold),
        [normalize(line) for line in prediction.strip().splitlines() if line.strip()],
    )
    return bool(lines) and (
        normalize(prediction) == gold_text or lines[-1] == gold_text or lines[-1].endswith(" " + gold_text)
    )


def _vote(proposals: list[str | None], gold: str) -> str | None:
    """The most common answer among the proposals (numbers by value, choices by letter)."""
    gold_is_number = NUMBER.fullmatch(gold.strip()) is not None
    gold_is_choice = re.fullmatch(r"[A-J]", gold.strip()) is not None

    def key(text: str) -> Any:
        if gold_is_number:
            return number_answer(text)
        if gold_is_choice:
            return choice_letter(text)
        return normalize(text)

    keys = [key(p) for p in proposals if p]
    keys = [k for k in keys if k is not None]
    if not keys:
        return None
    winner = Counter(keys).most_common(1)[0][0]
    return str(winner)


async def run_exact(
    moa: MoAChatModel,
    questions: list[dict[str, Any]],
    output: Path,
    *,
    self_moa: MoAChatModel | None = None,
    num_proc: int = 4,
    show_progress: bool = True,
) -> list[dict[str, Any]]:
    """Answer every question with MoA (and Self-MoA), journalling proposals, usage and timings."""
    for number, row in enumerate(questions):
        if "question" not in row or "answer" not in row:
            msg = f"row {number} of the questions needs 'question' and 'answer' fields, got {sorted(row)}"
            raise MoAConfigError(msg)

    async def answer(index: int) -> dict[str, Any]:
        row = questions[index]
        record: dict[str, Any] = {"id": questions[index].get("id", index), "index": index}
        record["answer"] = str(row["answer"])
        for name, model in (("moa", moa), ("self_moa", self_moa)):
            if model is None:
                continue
            started = time.perf_counter()
            reply = await model.ainvoke([HumanMessage(row["question"])])
            record[name] = {
                "text": reply.text,
                "seconds": time.perf_counter() - started,
                "tokens": reply.usage_metadata["total_tokens"] if reply.usage_metadata else 0,
                # US dollars (None: a price or a usage unknown; see ``langchain_moa.costs``)
                "cost_usd": reply.response_metadata["moa"]["cost"]["total"],
                "proposals": [
                    {
                        "model": p["model"],
                        "text": p["content"],
                        "seconds": p["latency_s"],
                        "tokens": (p["usage"] or {}).get("total_tokens", 0),
                        "cost_usd": reply.response_metadata["moa"]["cost"]["proposers"].get(p["node"]),
                    }
                    for p in reply.response_metadata["moa"]["layers"][0]
                ]
                if reply.response_metadata["moa"]["layers"]
                else [],
                # The last layer's answers: what any aggregation strategy is given.
                "final": [p["content"] for p in (reply.response_metadata["moa"]["layers"] or [[]])[-1]],
            }
        return record

    done = await run_items(
        range(len(questions)),
        lambda i: questions[i].get("id", i),
        answer,
        Journal(output, key="id"),
        failures=failures_path(output),
        num_proc=num_proc,
        description="exact match",
        show_progress=show_progress,
    )
    return sorted(done.values(), key=lambda r: r["index"])


@dataclass
class ConfigurationScore:
    """One configuration's accuracy and cost over the answered questions."""

    name: str
    correct: int
    total: int
    tokens: int
    seconds: float
    outcomes: list[bool] = field(default_factory=list)
    """Right or wrong on each question, in question order (for paired tests)."""

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        """Wilson's 95% interval of the accuracy."""
        return wilson_interval(self.correct, self.total)

    def against(self, other: ConfigurationScore) -> str:
        """The paired comparison with ``other``: the difference in points and McNemar's p."""
        if other is self or len(other.outcomes) != len(self.outcomes):
            return "-"
        _, _, p = mcnemar(self.outcomes, other.outcomes)
        return f"{(self.accuracy - other.accuracy) * 100:+.1f} pts (p={p:.2f})"


def baselines(
    scores: list[ConfigurationScore],
) -> tuple[ConfigurationScore | None, ConfigurationScore | None]:
    """The best single proposer and the majority vote, which every configuration is compared with."""
    proposers = [s for s in scores if s.name.startswith("proposer ")]
    best = max(proposers, key=lambda s: s.correct, default=None)
    vote = next((s for s in scores if s.name == "majority vote of the proposals"), None)
    return best, vote


REPORT_HEADER = ["configuration", "accuracy (95% interval)", "correct", "vs best proposer",
                 "vs majority vote", "tokens/question", "seconds/question"]  # fmt: skip
"""The columns of :func:`report`."""


def report(scores: list[ConfigurationScore]) -> list[list[str]]:
    """One row per configuration under :data:`REPORT_HEADER` (the CLI's table and QUALITY.md's)."""
    best, vote = baselines(scores)
    return [
        [s.name, f"{s.accuracy:.1%} ({s.interval[0]:.1%}-{s.interval[1]:.1%})", f"{s.correct}/{s.total}",
         s.against(best) if best else "-", s.against(vote) if vote else "-",
         f"{s.tokens / max(s.total, 1):.0f}", f"{s.seconds / max(s.total, 1):.1f}"]
        for s in scores
    ]  # fmt: skip


def score_exact(records: list[dict[str, Any]]) -> list[ConfigurationScore]:
    """Accuracy, tokens and wall time of each configuration."""
    scores: dict[str, ConfigurationScore] = {}

    def add(name: str, correct: bool, tokens: int, seconds: float) -> None:
        score = scores.setdefault(name, ConfigurationScore(name, 0, 0, 0, 0.0))
        score.outcomes.append(correct)
        score.correct += correct
        score.total += 1
        score.tokens += tokens
        score.seconds += seconds

    for record in records:
        gold, moa = record["answer"], record["moa"]
        proposals = moa["proposals"]
        for number, p in enumerate(proposals, start=1):
            add(f"proposer {number}: {p['model']}", matches(p["text"], gold), p["tokens"], p["seconds"])
        if proposals:
            vote = _vote([p["text"] for p in proposals], gold)
            add(
                "majority vote of the proposals",
                vote is not None and matches(vote, gold),
                sum(p["tokens"] for p in proposals),
                max(p["seconds"] for p in proposals),
            )
        add("MoA", matches(moa["text"], gold), moa["tokens"], moa["seconds"])
        for strategy, result in record.get("strategies", {}).items():
            add(f"MoA ({strategy})", matches(result["text"], gold), result["tokens"], result["seconds"])
        if "self_moa" in record:
            add(
                "Self-MoA",
                matches(record["self_moa"]["text"], gold),
                record["self_moa"]["tokens"],
                record["self_moa"]["seconds"],
            )
    return list(scores.values())


def plot(scores: list[ConfigurationScore], path: Path) -> None:
    """Accuracy (with its 95% interval) against tokens, one point per configuration (needs the [eval]
    extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        msg = 'plotting needs matplotlib: pip install "langchain-moa[eval]"'
        raise MoAConfigError(msg) from None
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for score in scores:
        x, y = score.tokens / max(score.total, 1), score.accuracy * 100
        low, high = (v * 100 for v in score.interval)
        axes.errorbar(x, y, yerr=[[y - low], [high - y]], fmt="o", capsize=3)  # the 95% interval
        axes.annotate(score.name, (x, y), fontsize=8)
    axes.set_xlabel("tokens per question")
    axes.set_ylabel("accuracy (%)")
    axes.set_title("Accuracy against cost")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
