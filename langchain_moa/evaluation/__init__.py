"""Reproduce the paper's benchmarks and compare configurations on your own questions.

``moa eval alpaca-eval | mt-bench | flask | exact`` on the command line; the same functions here.
Every run is concurrent, shows its progress and resumes: rerun it with the same output file and it
does only what is missing (failed items are listed in ``<output>.failures.json`` and retried).
"""

from langchain_moa.answers import normalize
from langchain_moa.evaluation.data import load_alpaca_instructions, load_jsonl, load_mt_bench
from langchain_moa.evaluation.exact import matches, run_exact, score_exact
from langchain_moa.evaluation.generate import (
    MT_BENCH_TEMPERATURES,
    generate_alpaca_eval,
    generate_flask,
    generate_mt_bench,
)
from langchain_moa.evaluation.judge import judge_mt_bench, mt_bench_scores

__all__ = [
    "MT_BENCH_TEMPERATURES",
    "generate_alpaca_eval",
    "generate_flask",
    "generate_mt_bench",
    "judge_mt_bench",
    "load_alpaca_instructions",
    "load_jsonl",
    "load_mt_bench",
    "matches",
    "mt_bench_scores",
    "normalize",
    "run_exact",
    "score_exact",
]
