"""The OpenAI format of `moa serve`, offline: requests checked, answers and chunks built; the extra."""

from __future__ import annotations

import re

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from pydantic import ValidationError

from langchain_moa import MoAConfigError
from langchain_moa.extras import install_command
from langchain_moa.server import require_serve_extra
from langchain_moa.server.openai_format import completion, delta_of
from langchain_moa.server.requests import ChatRequest
from langchain_moa.server.signing import ProposalSigner


def test_a_request_becomes_a_conversation_and_call_arguments() -> None:
    request = ChatRequest.model_validate(
        {
            "model": "moa-local",
            "messages": [
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "w", "arguments": '{"city": "Paris"}'}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            ],
            "max_tokens": 9, "max_completion_tokens": 12, "temperature": 0, "stop": "END", "top_p": 0.5,
        }
    )  # fmt: skip
    conversation, ignored = request.conversation(ProposalSigner())
    assert ignored == []
    assert [type(m) for m in conversation] == [HumanMessage, AIMessage, ToolMessage]
    assert conversation[1].tool_calls[0]["args"] == {"city": "Paris"}  # type: ignore[attr-defined]
    # max_completion_tokens wins over the older max_tokens, as in OpenAI's API.
    assert request.call_kwargs() == {"temperature": 0, "max_tokens": 12, "stop": ["END"]}


@pytest.mark.parametrize(
    ("body", "field"),
    [({"model": "m", "messages": []}, "messages"), ({"model": "m", "messages": [{"role": "user", "content": "q"}],
      "n": 2}, "n"), ({"messages": [{"role": "user", "content": "q"}]}, "model")],
)  # fmt: skip
def test_bad_requests_name_the_field(body: dict, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ChatRequest.model_validate(body)
    assert caught.value.errors()[0]["loc"][0] == field


def test_an_answer_with_tool_calls_and_a_streamed_tool_call_chunk() -> None:
    answer = AIMessage("", tool_calls=[{"name": "w", "args": {"city": "Paris"}, "id": "c1"}],
                       usage_metadata={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
                       response_metadata={"moa": {"layers": []}})  # fmt: skip
    body = completion(answer, "moa-x")
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert body["choices"][0]["message"]["tool_calls"] == [
        {"id": "c1", "type": "function", "function": {"name": "w", "arguments": '{"city": "Paris"}'}}
    ]
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "cost_usd": None}
    assert body["moa"] == {"layers": []}
    chunk = AIMessageChunk(
        content="", tool_call_chunks=[{"name": "w", "args": '{"ci', "id": "c1", "index": 0}]
    )
    assert delta_of(chunk) == {
        "tool_calls": [
            {"index": 0, "id": "c1", "type": "function", "function": {"name": "w", "arguments": '{"ci'}}
        ]
    }


def test_without_the_serve_extra_the_error_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "uvicorn" else real(name))
    expected = f"moa serve needs uvicorn, which is not installed. Install it with: {install_command('serve')}"
    with pytest.raises(MoAConfigError, match=re.escape(expected)):
        require_serve_extra()
