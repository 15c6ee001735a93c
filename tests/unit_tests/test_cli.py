"""The ``moa`` command with scripted models behind its model strings."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from typer.testing import CliRunner

from langchain_moa import MoAChatModel, cli
from langchain_moa.cli.options import ModelChoice
from langchain_moa.fakes import ScriptedChatModel

runner = CliRunner()


class Models:
    """Model strings the command line may name, each a scripted model that records its calls."""

    def __init__(self) -> None:
        self.made: dict[str, list[ScriptedChatModel]] = {}

    def resolve(self, spec: Any, *, api_key: Any = None) -> ScriptedChatModel:
        if not isinstance(spec, str):
            return spec
        name = spec.split(":", 1)[-1]
        if name.startswith("broken"):
            model = ScriptedChatModel(answer=RuntimeError("provider down"), model_name=name)
        elif name.startswith("cut"):  # an OpenAI-style or an Anthropic-style provider
            metadata = {"stop_reason": "max_tokens"} if "anthropic" in name else {"finish_reason": "length"}
            reply = AIMessage("An answer that stops in the", response_metadata=metadata)
            model = ScriptedChatModel(answer=reply, model_name=name)
        elif name.startswith("agg"):
            model = ScriptedChatModel(
                respond=lambda m, k: f"Final answer after {len(m)} messages.", model_name=name
            )
        else:
            model = ScriptedChatModel(answer=f"proposal from {name}", model_name=name)
        self.made.setdefault(name, []).append(model)
        return model

    def calls(self, name: str) -> list[dict]:
        return [c for m in self.made[name] for c in m.calls]


@pytest.fixture
def models(monkeypatch: pytest.MonkeyPatch) -> Models:
    models = Models()
    monkeypatch.setattr("langchain_moa.graph.resolve_chat_model", models.resolve)
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    return models


FAKE = ["--reference-models", "p1,p2", "--aggregator", "agg"]


def test_one_shot_prints_the_answer(models: Models) -> None:
    result = runner.invoke(cli.app, ["Why is the sky blue?", *FAKE])
    assert result.exit_code == 0, result.output
    assert "Final answer after 2 messages." in result.stdout
    assert models.calls("p1")[0]["messages"][-1].content == "Why is the sky blue?"


def test_without_a_key_the_local_preset_is_announced(models: Models) -> None:
    result = runner.invoke(cli.app, ["hi", "--aggregator", "agg"])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("No TOGETHER_API_KEY set: the proposers come from the local preset")
    assert len(models.made["qwen2.5-coder-0.5b"]) == 3  # the local preset's three samples


@pytest.mark.parametrize(
    "args", [["--quiet"], ["--json"], ["--reference-models", "p1", "--aggregator", "agg"]]
)
def test_no_notice_when_quiet_or_when_no_preset_model_runs(models: Models, args: list[str]) -> None:
    result = runner.invoke(cli.app, [*args, "hi"] if "--quiet" in args else ["hi", *args])
    assert result.exit_code == 0, result.output
    assert "TOGETHER_API_KEY" not in result.stderr


@pytest.mark.parametrize("aggregator", ["cut", "cut-anthropic"])
def test_an_answer_cut_by_the_token_limit_says_so(models: Models, aggregator: str) -> None:
    result = runner.invoke(cli.app, ["hi", *FAKE[:2], "--aggregator", aggregator, "--max-tokens", "7"])
    assert result.exit_code == 0, result.output
    assert "An answer that stops in the" in result.stdout
    assert "(the answer was cut at the token limit: raise --max-tokens to read all of it)" in result.stderr
    whole = runner.invoke(cli.app, ["hi", *FAKE])
    assert "cut at the token limit" not in whole.stderr


def test_with_a_key_the_together_preset_is_the_default(
    models: Models, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOGETHER_API_KEY", "k")
    result = runner.invoke(cli.app, ["hi", "--aggregator", "agg"])
    assert result.exit_code == 0, result.output
    assert "Qwen/Qwen2.5-Coder-32B-Instruct" in models.made and "using the local preset" not in result.stderr


def test_every_option_is_honoured(models: Models) -> None:
    args = [
        "Q",
        *FAKE,
        "--temperature",
        "0.2",
        "--max-tokens",
        "77",
        "--rounds",
        "2",
        "--num-proc",
        "1",
        "--json",
    ]
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    calls = models.calls("p1")
    assert len(calls) == 2  # --rounds 2: two proposer layers
    for call in [*calls, *models.calls("agg")]:
        assert call["kwargs"]["temperature"] == 0.2
        assert call["kwargs"]["max_tokens"] == 77
    payload = json.loads(result.stdout)
    assert payload["answer"] == "Final answer after 2 messages."
    assert [[p["model"] for p in layer] for layer in payload["layers"]] == [["p1", "p2"], ["p1", "p2"]]
    assert payload["usage"]["total_tokens"] > 0


def test_layers_and_show_proposals(models: Models) -> None:
    result = runner.invoke(cli.app, ["Q", *FAKE, "--layers", "1"])
    assert result.exit_code == 0
    assert "p1" not in models.made  # one layer: the aggregator alone
    result = runner.invoke(cli.app, ["Q", *FAKE, "--show-proposals"])
    assert "--- layer 1 · proposer 2 · p2\nproposal from p2" in result.stdout


def test_quiet_prints_just_the_answer(models: Models) -> None:
    result = runner.invoke(cli.app, ["Q", *FAKE, "--quiet"])
    assert result.stdout == "Final answer after 2 messages.\n"


def test_chat_keeps_history_and_leaves_on_exit(models: Models) -> None:
    result = runner.invoke(cli.app, ["chat", *FAKE], input="first\nsecond\nexit\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.count(">>> ") == 3
    second = models.calls("agg")[1]["messages"]
    assert [m.content for m in second[1:]] == ["first", "Final answer after 2 messages.", "second"]


def test_a_chat_session_runs_every_turn_on_one_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    loops: list[int] = []

    def answer(messages: list, kwargs: dict) -> str:
        loops.append(id(asyncio.get_running_loop()))
        return "ok"

    monkeypatch.setattr(
        "langchain_moa.graph.resolve_chat_model", lambda spec, **_: ScriptedChatModel(respond=answer)
    )
    result = runner.invoke(cli.app, ["chat", *FAKE], input="one\ntwo\nthree\nexit\n")
    assert result.exit_code == 0, result.output
    assert len(loops) == 9 and len(set(loops)) == 1  # 3 turns x (2 proposers + aggregator), one loop


def test_chat_without_multi_turn_forgets(models: Models) -> None:
    result = runner.invoke(cli.app, ["chat", *FAKE, "--no-multi-turn"], input="first\nsecond\n")
    assert result.exit_code == 0, result.output
    assert [m.content for m in models.calls("agg")[1]["messages"][1:]] == ["second"]


def test_chat_survives_a_failed_turn(models: Models) -> None:
    result = runner.invoke(
        cli.app, ["chat", "--reference-models", "broken", "--aggregator", "agg"], input="a\nb\n"
    )
    assert result.exit_code == 0
    assert result.stderr.count("moa: error: layer 1 kept 0 of 1 proposals") == 2


def test_presets_lists_every_preset(models: Models) -> None:
    result = runner.invoke(cli.app, ["presets"])
    for name in ("local", "local-1.5b", "together", "together-moa", "together-moa-lite", "self-moa"):
        assert f"{name}\t" in result.stdout


def test_a_table_on_a_terminal_shows_brackets_as_written() -> None:
    import io

    from rich.console import Console

    from langchain_moa.cli.output import print_table

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=200, color_system=None)
    print_table(console, ["preset", "needs"], [["local", 'pip install "langchain-moa[local]"']])
    assert 'pip install "langchain-moa[local]"' in screen.getvalue()


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["Q", "--preset", "lokal"], "moa: error: unknown preset 'lokal' — did you mean 'local'?", 2),
        (
            ["Q", "--layers", "1", "--aggregator", "togther:Qwen/Qwen2.5-72B-Instruct-Turbo"],
            "did you mean 'together'?",
            2,
        ),
        (
            ["Q", "--reference-models", "broken"],
            "moa: error: layer 1 kept 0 of 1 proposals, fewer than min_proposals=1. "
            "Failed: proposer 1 (broken): RuntimeError: provider down",
            1,
        ),
    ],
)
def test_errors_are_one_line_bad_usage_2_and_a_failed_run_1(
    models: Models, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str, code: int
) -> None:
    monkeypatch.setattr("langchain_moa.graph.resolve_chat_model", _real_resolve_for(models, args))
    result = runner.invoke(cli.app, args)
    assert result.exit_code == code
    assert message in result.stderr
    assert "Traceback" not in result.output
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("moa: error:")]
    assert message in error


def _real_resolve_for(models: Models, args: list[str]) -> Any:
    from langchain_moa.models import resolve_chat_model

    return resolve_chat_model if any("togther" in a for a in args) else models.resolve


def test_a_missing_key_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    result = runner.invoke(cli.app, ["Q", "--preset", "together"])
    assert result.exit_code == 2  # bad usage: nothing ran
    assert result.stderr.startswith("moa: error: no API key for Together model")
    assert "TOGETHER_API_KEY" in result.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["Q", "--temperature", "-1"], "--temperature"),
        (["Q", "--max-tokens", "0"], "--max-tokens"),
        (["Q", "--rounds", "1", "--layers", "3"], "--rounds 1 and --layers 3 disagree"),
        (["Q", "--staircase", "0"], "--staircase: staircase must be an integer >= 1"),
        (["Q", "--proposer-max-tokens", "0"], "--proposer-max-tokens: proposer_max_tokens must be"),
        (["Q", "--fanout", "often"], "--fanout: fanout must be 'call', 'turn'"),
        (["Q", "--staircase-layout", "sideways"], "--staircase-layout: staircase_layout must be 'auto'"),
        (["Q", "--staircase", "8", "--aggregation", "select"], "staircase cannot be combined"),
    ],
)
def test_bad_option_values_are_usage_errors(models: Models, args: list[str], fragment: str) -> None:
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 2
    assert fragment in result.stderr
    assert "Traceback" not in result.output


def test_every_moa_option_has_a_flag_with_its_documentation() -> None:
    from langchain_moa.cli.options import _FLAGS, _PYTHON_ONLY
    from langchain_moa.options import describe, option_names

    result = runner.invoke(cli.app, ["ask", "--help"], env={"COLUMNS": "400"})
    help_text = " ".join(result.output.split())
    assert _PYTHON_ONLY == ("agreement_embeddings",)  # an object: no flag can give one
    for name in option_names():
        if name in _PYTHON_ONLY:
            continue
        flag = _FLAGS[name].split("/")[0]
        assert flag in help_text, name
    assert " ".join(describe("staircase").split()) in help_text


def test_the_generated_flags_reach_the_model(models: Models) -> None:
    args = ["Q", *FAKE, "--staircase", "4", "--proposer-max-tokens", "7", "--proposal-quorum", "2",
            "--layer-deadline", "9.5", "--proposer-timeout", "30", "--min-proposals", "2",
            "--max-retries", "1", "--fanout", "3", "--seed", "5", "--staircase-layout", "prefill",
            "--json"]  # fmt: skip
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    assert [c["kwargs"]["max_tokens"] for c in models.calls("p1")] == [7]
    answer = json.loads(result.stdout)
    assert (answer["staircase"]["chunk"], answer["staircase"]["layout"]) == (4, "prefill")
    fields = ModelChoice(preset="local", options={"fanout": 3, "layer_deadline": 9.5}).model_fields()
    assert (fields["fanout"], fields["layer_deadline"]) == (3, 9.5)


def test_option_values_map_to_model_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    fields = ModelChoice(preset="together", num_proc=3, rounds=2, temperature=0.0).model_fields()
    assert fields["max_concurrency"] == 3
    assert fields["layers"] == 3
    assert fields["temperature"] == 0.0  # a zero is honoured, not mistaken for "not given"
    assert fields["aggregator"] == "Qwen/Qwen2.5-72B-Instruct-Turbo"


def test_a_run_is_named_after_its_preset_unless_an_option_changes_what_runs() -> None:
    assert ModelChoice(preset="local").configuration_name() == "moa-local"
    assert ModelChoice(preset="local", num_proc=2).configuration_name() == "moa-local"  # speed only
    tallied = ModelChoice(preset="local", aggregation="tally").configuration_name()
    layered = ModelChoice(preset="local", layers=3).configuration_name()
    assert tallied.startswith("moa-qwen2.5-coder-0.5b-3p-2l-") and layered.startswith(
        "moa-qwen2.5-coder-0.5b-3p-3l-"
    )
    assert tallied != ModelChoice(preset="local", aggregation="majority").configuration_name()


def test_chat_thread_is_resumed_by_a_later_chat(
    models: Models, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGCHAIN_MOA_DATA", str(tmp_path))
    first = runner.invoke(cli.app, ["chat", *FAKE, "--thread", "work"], input="My name is Ada.\n")
    assert first.exit_code == 0, first.output
    assert "Thread 'work': 0 earlier messages" in first.stderr
    second = runner.invoke(cli.app, ["chat", *FAKE, "--thread", "work"], input="What is my name?\n")
    assert second.exit_code == 0, second.output
    assert "Thread 'work': 2 earlier messages" in second.stderr
    sent = models.calls("agg")[-1]["messages"]
    assert [m.content for m in sent[1:]] == [
        "My name is Ada.",
        "Final answer after 2 messages.",
        "What is my name?",
    ]
    other = runner.invoke(cli.app, ["chat", *FAKE, "--thread", "other"], input="")
    assert "Thread 'other': 0 earlier messages" in other.stderr


def test_thread_and_no_multi_turn_conflict(models: Models) -> None:
    result = runner.invoke(cli.app, ["chat", *FAKE, "--thread", "t", "--no-multi-turn"])
    assert result.exit_code == 2
    assert "--thread keeps the history; drop --no-multi-turn" in result.stderr


def test_graph_prints_the_mermaid_drawing_without_keys_or_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    result = runner.invoke(cli.app, ["graph", "--preset", "together-moa"])
    assert result.exit_code == 0, result.output
    drawing = result.stdout
    assert drawing.count("(layer 1 #") == 6 and drawing.count("(layer 2 #") == 6
    assert drawing.count(" --> aggregator;") == 6
    assert "(layer 1 #4 Llama-3-70b-chat-hf)" in drawing


def test_the_docs_show_the_drawing_moa_graph_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    readme = (Path(__file__).resolve().parents[2] / "docs" / "langgraph.md").read_text()
    drawing = runner.invoke(cli.app, ["graph", "--preset", "together", "--layers", "3"]).stdout.strip()
    assert f"```mermaid\n{drawing}\n```" in readme


def test_the_live_view_shows_a_staircase_proposal_being_written() -> None:
    import io

    from rich.console import Console

    from langchain_moa.cli.output import View
    from langchain_moa.events import ProposalChunk, ProposerStarted

    screen = io.StringIO()
    view = View(Console(file=screen, width=120), live=False, quiet=False, show_proposals=False)
    view(ProposerStarted(node="layer 1 #1 m", layer=1, index=1, model="m"))
    for word in ("Paris", " is", " the"):
        view(ProposalChunk(node="layer 1 #1 m", layer=1, index=1, text=word))
    view.console.print(view._render())
    assert " ".join(screen.getvalue().split()) == "layer 1 #1 m … writing, 3 tokens"


# -- moa serve: what it serves and answers to ------------------------------------------------------


def _served_names(config: str | None, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    serve = importlib.import_module("langchain_moa.cli.serve")  # the module (the package exports the command)
    settings = {"choice": {"config": config}, "name": "moa-mine", "max_body_bytes": 1024, "body_timeout": 1.0,
                "cors_origins": [], "log_content": False, "log_format": "text", "allowed_hosts": ["localhost"]}  # fmt: skip
    configured = MoAChatModel(proposers=[ScriptedChatModel()], aggregator=ScriptedChatModel())
    return serve._app(settings, configured, None).state.registry.names()


def test_serve_with_a_configuration_file_serves_that_moa_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_moa.presets import PRESETS

    monkeypatch.setattr(
        "langchain_moa.models.unavailable_reason", lambda spec: None
    )  # every preset could run
    assert _served_names("moa.toml", monkeypatch) == ["moa-mine"]
    assert _served_names(None, monkeypatch) == ["moa-mine", *(f"moa-{name}" for name in PRESETS)]


def test_serve_answers_to_loopback_its_address_and_the_names_allowed() -> None:
    import socket

    from langchain_moa.cli.serve import _allowed_hosts

    assert _allowed_hosts("127.0.0.1", []) == ["localhost", "127.0.0.1", "::1"]
    assert _allowed_hosts("10.0.0.5", ["moa.lan"]) == ["localhost", "127.0.0.1", "::1", "10.0.0.5", "moa.lan"]
    everywhere = _allowed_hosts("0.0.0.0", [])
    assert socket.gethostname() in everywhere and "0.0.0.0" not in everywhere


# -- moa weights --------------------------------------------------------------------------------


def test_moa_weights_list_says_what_is_missing_and_the_command_that_brings_it(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGCHAIN_MOA_CACHE", str(tmp_path))
    result = runner.invoke(cli.app, ["weights", "list"])
    assert result.exit_code == 0, result.output
    assert (
        "qwen2.5-coder-0.5b" in result.stdout
        and "run: moa weights install qwen2.5-coder-1.5b" in result.stdout
    )
    assert f"Cache: {tmp_path}" in result.stderr
    (tmp_path / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf").write_bytes(b"GGUF")  # present (verified at load)
    listed = runner.invoke(cli.app, ["weights", "list"]).stdout
    assert "run: moa weights install qwen2.5-coder-0.5b" not in listed and "installed" in listed


def test_moa_weights_install_refuses_an_unknown_model_before_downloading_anything(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGCHAIN_MOA_CACHE", str(tmp_path))
    result = runner.invoke(cli.app, ["weights", "install", "qwen-9b"])
    assert result.exit_code == 2
    assert "unknown model 'qwen-9b': use one of ['qwen2.5-coder-0.5b', 'qwen2.5-coder-1.5b']" in result.stderr
    assert list(tmp_path.iterdir()) == []
