"""LangChain's standard chat model suites, run offline against a MoAChatModel of scripted models.

Both suites run here, with sockets disabled: the "integration" suite exercises real calls end to end
through the MoA graph; only the models at its leaves are scripted (``tests/rule_based.py``).
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_moa import MoAChatModel
from langchain_moa.fakes import ScriptedChatModel
from tests.rule_based import reply
from tests.standard_suite import MoAIntegrationTests


def _params() -> dict[str, Any]:
    return {
        "proposers": [ScriptedChatModel(respond=reply, model_name=f"proposer-{i}") for i in range(2)],
        "aggregator": ScriptedChatModel(respond=reply, model_name="aggregator"),
    }


class TestMoAChatModelUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return MoAChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return _params()

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return {"TOGETHER_API_KEY": "env-key"}, _params(), {"api_key": "env-key"}


class TestMoAChatModelIntegration(MoAIntegrationTests):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return _params()

    @property
    def model_override_value(self) -> str:
        return "another-aggregator"  # a call-time model= goes to the aggregator
