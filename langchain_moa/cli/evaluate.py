"""``moa eval``: generate the paper's benchmark answers, grade MT-Bench, compare configurations."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from langchain_moa.aggregation import STRATEGIES
from langchain_moa.cli.ask import build_model
from langchain_moa.cli.options import ModelChoice, model_options
from langchain_moa.cli.output import consoles, fail, plain, print_table
from langchain_moa.errors import MoAError

if TYPE_CHECKING:  # the evaluation code is imported when a command runs
    from langchain_moa.chat_models import MoAChatModel

__all__ = ["eval_app"]

eval_app = typer.Typer(
    help="Reproduce AlpacaEval 2, MT-Bench and FLASK, or compare configurations.", no_args_is_help=True
)

OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Output file; rerun with it to resume.")]
NumProcOpt = Annotated[int, typer.Option("--num-proc", min=1, help="Questions answered at once.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
NameOpt = Annotated[
    str | None,
    typer.Option("--name", help="The name results are reported under (default: made of the configuration)."),
]


def _moa(choice: ModelChoice, name: str | None = None, *, self_moa: bool = False) -> tuple[MoAChatModel, str]:
    """The configured MoA and its name for reports; ``self_moa``: its first proposer, sampled as many
    times as there are proposers and aggregating itself."""
    err = consoles()[1]
    moa = build_model(choice, err)
    if self_moa:
        first = moa.proposers[0]
        moa = build_model(choice, err, proposers=[first] * len(moa.proposers), aggregator=first)
    return moa, name or _guard(choice.configuration_name)


def _guard(call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)``; an error about the run's input becomes one line on stderr and exit code 1."""
    try:
        return call(*args)
    except (MoAError, OSError, ValueError, KeyError) as error:
        raise fail(consoles()[1], error) from None


def _run(coroutine: Any) -> Any:
    return _guard(asyncio.run, coroutine)


def _report_failures(output: Path) -> None:
    from langchain_moa.evaluation.runner import failures_path

    failed = failures_path(output)
    count = len(json.loads(failed.read_text())) if failed.exists() else 0
    if count:
        plain(consoles()[1], f"{count} items failed (see {failed}); rerun the same command to retry them")
        raise typer.Exit(1)


@eval_app.command("alpaca-eval")
@model_options(exclude=("num_proc",))
def alpaca_eval(
    choice: ModelChoice,
    output: OutputOpt = Path("alpaca_eval_outputs.json"),
    instructions: Annotated[
        Path | None, typer.Option(help="Local JSON/JSONL instruction set (default: the hub).")
    ] = None,
    name: NameOpt = None,
    num_proc: NumProcOpt = 4,
    quiet: QuietOpt = False,
    judge_outputs: Annotated[
        bool, typer.Option("--judge", help="Score with alpaca_eval (needs it and OPENAI_API_KEY).")
    ] = False,
) -> None:
    """Write AlpacaEval 2's model outputs (a JSON array), then optionally score them."""
    from langchain_moa.evaluation import data, generate

    moa, name = _moa(choice, name)
    rows = _run(
        generate.generate_alpaca_eval(
            moa,
            _guard(data.load_alpaca_instructions, instructions),
            output,
            generator=name,
            num_proc=num_proc,
            show_progress=not quiet,
        )
    )
    plain(consoles()[0], f"{len(rows)} outputs in {output}")
    _report_failures(output)
    if judge_outputs:
        if shutil.which("alpaca_eval") is None or not os.environ.get("OPENAI_API_KEY"):
            raise fail(
                consoles()[1],
                ValueError(
                    "--judge runs alpaca_eval's scorer: pip install alpaca-eval and set OPENAI_API_KEY "
                    "(its GPT-4 judge)"
                ),
            )
        raise typer.Exit(subprocess.call(["alpaca_eval", "--model_outputs", str(output)]))


def _judgments_path(answers: Path) -> Path:
    """Where grades go: FastChat's ``model_judgment/`` beside its ``model_answer/`` folder, never in it
    (FastChat takes every ``*.jsonl`` of the answer folder for a model's answers)."""
    if answers.parent.name == "model_answer":
        return answers.parent.parent / "model_judgment" / f"{answers.stem}.jsonl"
    return answers.with_name(f"{answers.stem}.judgments.jsonl")


@eval_app.command("mt-bench")
@model_options(exclude=("num_proc", "temperature"))  # FastChat sets it per category
def mt_bench(
    choice: ModelChoice,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Answer file; FastChat names the model after it. Default: "
            "data/mt_bench/model_answer/<name>.jsonl, FastChat's layout. Rerun with it to resume.",
        ),
    ] = None,
    questions: Annotated[
        Path | None, typer.Option(help="question.jsonl (default: the installed MT-Bench data).")
    ] = None,
    name: NameOpt = None,
    num_proc: NumProcOpt = 4,
    quiet: QuietOpt = False,
    judge_model: Annotated[
        str | None, typer.Option("--judge", help="Grade with this chat model, e.g. openai:gpt-4o.")
    ] = None,
) -> None:
    """Answer MT-Bench's two-turn questions (FastChat's answer format); --judge grades them."""
    from langchain_moa.evaluation import data, generate, judge
    from langchain_moa.models import resolve_chat_model

    moa, name = _moa(choice, name or (output.stem if output else None))
    output = output or Path("data/mt_bench/model_answer") / f"{name}.jsonl"
    if output.stem != name:
        plain(consoles()[1], f"FastChat will judge {output} as model {output.stem!r}, not {name!r}")
    rows = _guard(data.load_mt_bench, questions)
    answers = _run(
        generate.generate_mt_bench(
            moa, rows, output, model_id=name, num_proc=num_proc, show_progress=not quiet
        )
    )
    plain(consoles()[0], f"{len(answers)} answers in {output}")
    _report_failures(output)
    if judge_model:
        judgments_path = _judgments_path(output)
        judge_chat = _guard(resolve_chat_model, judge_model)
        judgments = _run(
            judge.judge_mt_bench(
                answers, rows, judge_chat, judgments_path, num_proc=num_proc, show_progress=not quiet
            )
        )
        scores = judge.mt_bench_scores(judgments)
        title = f"MT-Bench ({name}, judged by {judge_model})"
        print_table(consoles()[0], ["", "score"], [[k, f"{v:.2f}"] for k, v in scores.items()], title)
        _report_failures(judgments_path)


@eval_app.command("flask")
@model_options(exclude=("num_proc",))
def flask(
    choice: ModelChoice,
    questions: Annotated[
        Path,
        typer.Option(
            help="FLASK's evaluation JSONL: the current set (idx, instruction, ...) or the older one."
        ),
    ],
    output: OutputOpt = Path("flask_outputs.jsonl"),
    num_proc: NumProcOpt = 4,
    quiet: QuietOpt = False,
) -> None:
    """Answer FLASK's questions: each row comes back with its text replaced by the answer."""
    from langchain_moa.evaluation import data, generate

    moa, _ = _moa(choice)
    rows = _run(
        generate.generate_flask(
            moa, _guard(data.load_flask, questions), output, num_proc=num_proc, show_progress=not quiet
        )
    )
    plain(consoles()[0], f"{len(rows)} answers in {output}")
    _report_failures(output)


@eval_app.command("exact")
@model_options(exclude=("num_proc",))
def exact_match(
    choice: ModelChoice,
    questions: Annotated[
        Path | None,
        typer.Option(help="JSONL of {question, answer} (answers: numbers, choice letters or short strings)."),
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="A question set by name instead of --questions: mmlu (see the README).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N questions.")] = None,
    strategies: Annotated[
        str | None,
        typer.Option(
            "--strategies",
            help=f"Also score these aggregations (comma separated: {', '.join(STRATEGIES)}, or the fast "
            "paths staircase=N and proposer_max_tokens=N, replayed from the proposals' first words) on "
            "the same proposals: only the aggregator runs again.",
        ),
    ] = None,
    output: OutputOpt = Path("exact_results.jsonl"),
    num_proc: NumProcOpt = 4,
    quiet: QuietOpt = False,
    self_moa: Annotated[
        bool, typer.Option("--self-moa", help="Also run Self-MoA of the first proposer.")
    ] = False,
    plot_path: Annotated[
        Path | None, typer.Option("--plot", help="Draw accuracy against cost into a PNG.")
    ] = None,
) -> None:
    """Score each proposer alone, their majority vote, MoA (and Self-MoA) on your questions."""
    from langchain_moa.evaluation import data, exact, replays

    if (questions is None) == (dataset is None):
        raise fail(consoles()[1], ValueError("give --questions FILE or --dataset NAME (one of them)"), code=2)
    rows = (
        _guard(data.load_dataset, dataset, limit) if dataset else _guard(data.load_jsonl, questions)[:limit]
    )
    others = [s.strip() for s in (strategies or "").split(",") if s.strip()]
    _guard(replays.check_strategies, others)  # before any model runs
    moa, _ = _moa(choice)
    selfish = None
    if self_moa:
        selfish, _ = _moa(choice, self_moa=True)
    records = _run(
        exact.run_exact(
            moa,
            rows,
            output,
            self_moa=selfish,
            num_proc=num_proc,
            show_progress=not quiet,
        )
    )
    if others:
        records = _run(
            replays.run_strategies(
                moa, rows, records, output, others, num_proc=num_proc, show_progress=not quiet
            )
        )
    scores = exact.score_exact(records)
    print_table(consoles()[0], exact.REPORT_HEADER, exact.report(scores), f"{len(records)} questions")
    if plot_path is not None:
        _guard(exact.plot, scores, plot_path)
    _report_failures(output)
