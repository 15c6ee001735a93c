"""A new user's first commands, run through ``moa``'s own entry point in this process (``moa`` fixture;
no model answers here)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.mark.parametrize("question", ["", "   "])
def test_an_empty_question_fails_at_once(question: str, moa: Callable[..., Any]) -> None:
    started = time.monotonic()
    done = moa(question)
    assert done.code == 2
    assert (
        done.stderr.strip()
        == 'moa: error: the question is empty: ask something, e.g. moa "Why is the sky blue?"'
    )
    assert done.stdout == ""
    assert time.monotonic() - started < 10  # no model was loaded


def test_options_go_before_the_question_too(moa: Callable[..., Any]) -> None:
    # A bad value proves the options were read as the question's options, before any model ran.
    done = moa("--json", "--max-tokens", "0", "Why is the sky blue?")
    assert done.code == 2
    assert "--max-tokens: max_tokens must be an integer >= 1" in done.stderr
    assert "No such option" not in done.stderr


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--max-tokens", "lots", "hi"], "moa: error: Invalid value for '--max-tokens': "),
        (["--bogus", "hi"], "moa: error: No such option: --bogus"),
        (["--aggregation", "vote", "hi"], "moa: error: --aggregation: aggregation must be one of"),
        (["--temperature", "-1", "hi"], "moa: error: --temperature: temperature must be"),
        (["--preset", "lokal", "hi"], "moa: error: unknown preset 'lokal'"),
    ],
)
def test_bad_usage_is_one_line_and_exit_code_2(args: list[str], line: str, moa: Callable[..., Any]) -> None:
    done = moa(*args)
    assert done.code == 2
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith(line)


def test_version_and_a_help_that_shows_how_to_ask_first(moa: Callable[..., Any]) -> None:
    from importlib.metadata import version

    assert moa("--version").stdout.strip() == f"moa (langchain-moa) {version('langchain-moa')}"
    help_text = moa("--help").stdout
    assert help_text.index('moa "Why is the sky blue?"') < help_text.index("Commands:")
    for option in ("--preset", "--reference-models", "--max-tokens", "--json", "--quiet"):
        assert option in help_text.split("Commands:")[0]


@pytest.mark.parametrize(
    ("model", "variable"),
    [("openai:gpt-4o-mini", "OPENAI_API_KEY"), ("anthropic:claude-sonnet-4-5", "ANTHROPIC_API_KEY")],
)
def test_a_missing_provider_key_is_one_line_naming_the_variable(
    model: str, variable: str, moa: Callable[..., Any]
) -> None:
    done = moa("hi", "--reference-models", model, "--aggregator", model)
    assert done.code == 2  # bad usage: nothing ran
    assert done.stderr.splitlines() == [
        f"moa: error: no API key for {model.split(':')[0]} model '{model.split(':')[1]}': set {variable} "
        "(or use a local preset, which needs no key)"
    ]


def test_help_texts_speak_to_users(moa: Callable[..., Any]) -> None:
    for command in (["ask", "--help"], ["chat", "--help"], ["eval", "mt-bench", "--help"]):
        text = moa(*command).stdout
        assert "the seed" not in text.lower()  # the reference code's nickname means nothing to users


def test_every_install_command_we_print_names_an_extra_exactly_as_declared() -> None:
    # pip 23.2 (what `python -m venv` gives on Python 3.11) does not normalise extra names.
    import re
    import tomllib

    from langchain_moa.local import LOCAL_WEIGHTS
    from langchain_moa.presets import PRESETS

    root = Path(__file__).resolve().parents[2]
    extras = set(tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    printed = [w.install_hint() for w in LOCAL_WEIGHTS.values()] + [p.needs for p in PRESETS.values()]
    printed.append(
        "\n".join(p.read_text() for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))])
    )
    named = {
        e
        for text in printed
        for group in re.findall(r"langchain-moa\[([^\]]+)\]", text)
        for e in group.split(",")
    }
    named |= {e for group in re.findall(r'-e "\.\[([^\]]+)\]"', printed[-1]) for e in group.split(",")}
    assert named and named <= extras, named - extras
    # Weights are no extra: each preset of a local model names the command that installs them.
    assert all("moa weights install" in p.needs for p in PRESETS.values() if p.name.startswith("local"))
