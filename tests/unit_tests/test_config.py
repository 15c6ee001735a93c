"""Bad input fails clearly before any model is called; keys never leak; the public surface is pinned."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from langchain_core.exceptions import ModelInvalidRequestError
from langchain_core.load import dumpd, dumps
from langchain_core.tracers.context import collect_runs
from pydantic import SecretStr

import langchain_moa
from langchain_moa import MoAChatModel, MoAConfigError, build_moa_graph
from langchain_moa.fakes import ScriptedChatModel
from langchain_moa.models import resolve_chat_model, split_model_string

SECRET = "tg-secret-value-1234567890"


def test_public_names_are_pinned() -> None:
    assert langchain_moa.__all__ == [
        "AGGREGATOR_PROMPT",
        "AggregatorError",
        "InvalidConversationError",
        "MoAChatModel",
        "MoAConfigError",
        "MoAContext",
        "MoAError",
        "MoAEvent",
        "MoAOptions",
        "MoAState",
        "Proposal",
        "build_moa_graph",
        "observe",
    ]


def _fields(**overrides: Any) -> dict[str, Any]:
    return {
        "proposers": [ScriptedChatModel(), ScriptedChatModel()],
        "aggregator": ScriptedChatModel(),
        **overrides,
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"proposers": []}, "proposers is empty: give at least one model"),
        (
            {"layers": 0},
            "layers must be an integer >= 1 (1 = the aggregator alone, 2 = one proposer layer), got 0",
        ),
        ({"layers": -2}, "got -2"),
        ({"min_proposals": 3}, "min_proposals must be between 1 and the number of proposers (2), got 3"),
        ({"min_proposals": 0}, "got 0"),
        (
            {"proposer_timeout": 0},
            "proposer_timeout must be a positive number of seconds, or unset (no limit), got 0",
        ),
        ({"max_concurrency": 0}, "max_concurrency must be an integer >= 1, or unset (no bound), got 0"),
        ({"max_retries": -1}, "max_retries must be an integer >= 0, or unset"),
        (
            {"aggregator": "togther:Qwen/Qwen2.5-72B-Instruct-Turbo"},
            "unknown provider 'togther' in model 'togther:Qwen/Qwen2.5-72B-Instruct-Turbo'"
            " — did you mean 'together'?",
        ),
        (
            {"aggregator": "zzz:model"},
            "unknown provider 'zzz' in model 'zzz:model'; known providers: anthropic",
        ),
        ({"aggregator": ""}, "a model must be a LangChain chat model or a 'provider:model' string, got ''"),
    ],
)
def test_invalid_fields_name_the_value_and_the_fix(overrides: dict[str, Any], message: str) -> None:
    fields = _fields(**overrides)
    with pytest.raises(ValueError) as caught:
        MoAChatModel(**fields)
    assert message in str(caught.value)
    models = [m for m in [*fields["proposers"], fields["aggregator"]] if isinstance(m, ScriptedChatModel)]
    assert all(m.calls == [] for m in models)


def test_build_moa_graph_raises_the_same_errors() -> None:
    with pytest.raises(MoAConfigError, match="layers must be an integer >= 1"):
        build_moa_graph([ScriptedChatModel()], ScriptedChatModel(), layers=0)


def test_an_empty_conversation_is_refused_before_any_call() -> None:
    fields = _fields()
    moa = MoAChatModel(**fields)
    with pytest.raises(
        ModelInvalidRequestError, match="the conversation is empty: give at least one message"
    ):
        moa.invoke([])
    assert fields["aggregator"].calls == []


def test_together_model_without_a_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "no API key for Together model 'Qwen/Qwen2.5-72B-Instruct-Turbo': set TOGETHER_API_KEY"
        ),
    ):
        MoAChatModel(proposers=["Qwen/Qwen2.5-72B-Instruct-Turbo"], aggregator=ScriptedChatModel())


def test_model_strings_resolve_like_init_chat_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOGETHER_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert split_model_string("openai:gpt-4o-mini") == ("openai", "gpt-4o-mini")
    assert split_model_string("Qwen/Qwen2.5-72B-Instruct-Turbo") == (
        "together",
        "Qwen/Qwen2.5-72B-Instruct-Turbo",
    )
    together = resolve_chat_model("Qwen/Qwen2.5-72B-Instruct-Turbo")
    assert type(together).__name__ == "ChatTogether"
    assert together.model_name == "Qwen/Qwen2.5-72B-Instruct-Turbo"
    assert together.stream_usage is True  # usage while streaming, which Together only sends on request
    openai = resolve_chat_model("openai:gpt-4o-mini")
    assert type(openai).__name__ == "ChatOpenAI"


def test_keys_never_appear_in_repr_str_serialisation_or_traces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    moa = MoAChatModel(
        proposers=["Qwen/Qwen2.5-72B-Instruct-Turbo", ScriptedChatModel(answer="idea")],
        aggregator=ScriptedChatModel(answer="final"),
        api_key=SECRET,
        layers=1,
    )
    assert moa.api_key is not None and moa.api_key.get_secret_value() == SECRET
    with collect_runs() as runs:
        moa.invoke("Q")
    texts = [repr(moa), str(moa), json.dumps(dumpd(moa), default=str), dumps(moa), str(moa.model_dump())]
    texts += [json.dumps(run.model_dump(), default=str) for run in runs.traced_runs]
    assert runs.traced_runs
    for text in texts:
        assert SECRET not in text


def test_the_key_reaches_together_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    together = resolve_chat_model("Qwen/Qwen2.5-72B-Instruct-Turbo", api_key=SecretStr(SECRET))
    assert together.together_api_key.get_secret_value() == SECRET
    moa = MoAChatModel(
        proposers=["Qwen/Qwen2.5-72B-Instruct-Turbo"], aggregator=ScriptedChatModel(), api_key=SECRET
    )
    assert "layer 1 #1 Qwen2.5-72B-Instruct-Turbo" in moa.graph.nodes


def test_a_missing_key_fails_before_any_local_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[str] = []
    monkeypatch.setattr("langchain_moa.local.local_chat_model", lambda name: loaded.append(name))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MoAConfigError, match="OPENAI_API_KEY"):
        MoAChatModel(proposers=["local:qwen2.5-coder-0.5b"] * 2, aggregator="openai:gpt-4o")
    assert loaded == []


@pytest.mark.parametrize(
    ("direct_url", "command"),
    [
        (None, 'pip install "langchain-moa[local]"'),
        ('{"url": "file:///src/langchain-moa", "dir_info": {"editable": true}}', 'pip install -e "/src/langchain-moa[local]"'),
        ('{"url": "file:///src/my%20moa", "dir_info": {}}', 'pip install "/src/my moa[local]"'),
        ('{"url": "https://example.org/langchain_moa-0.1.0.whl", "archive_info": {}}', 'pip install "langchain-moa[local]"'),
    ],
)  # fmt: skip
def test_install_hints_fit_the_way_the_package_was_installed(
    monkeypatch: pytest.MonkeyPatch, direct_url: str | None, command: str
) -> None:
    from langchain_moa import extras

    class Installed:
        def read_text(self, name: str) -> str | None:
            return direct_url if name == "direct_url.json" else None

    monkeypatch.setattr(extras, "distribution", lambda name: Installed())
    extras._installed_from.cache_clear()
    try:
        assert extras.install_command("local") == command
    finally:
        extras._installed_from.cache_clear()
