"""The one options model: every option declared, documented and checked once; what derives from it."""

from __future__ import annotations

from typing import Any

import pytest

from langchain_moa import MoAChatModel, MoAConfigError, MoAOptions, build_moa_graph
from langchain_moa.fakes import ScriptedChatModel
from langchain_moa.langgraph_app import MoAConfiguration, make_graph
from langchain_moa.options import describe, option_names
from langchain_moa.presets import preset_fields


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("temperature", -1, "temperature must be a number >= 0, or unset (each model's own), got -1"),
        ("max_tokens", 0, "max_tokens must be an integer >= 1, or unset (each model's own limit), got 0"),
        ("max_tokens", 2.5, "max_tokens must be an integer >= 1, or unset (each model's own limit), got 2.5"),
        (
            "max_tokens",
            "lots",
            "max_tokens must be an integer >= 1, or unset (each model's own limit), got 'lots'",
        ),
        ("layers", True, "layers must be an integer >= 1"),
        ("aggregator_prompt", "  ", "aggregator_prompt must be a non-empty string, got '  '"),
        ("temprature", 0.5, "unknown option 'temprature' (options: proposers, aggregator, layers"),
    ],
)
def test_a_bad_value_fails_everywhere_with_the_same_message(field: str, value: Any, message: str) -> None:
    models: dict[str, Any] = {"proposers": [ScriptedChatModel()], "aggregator": ScriptedChatModel()}
    for build in (MoAOptions, MoAChatModel, lambda **kw: build_moa_graph(**kw)):
        with pytest.raises(MoAConfigError) as caught:
            build(**models, **{field: value})
        assert message in str(caught.value)
    with pytest.raises(MoAConfigError, match="max_tokens must be an integer"):
        preset_fields("together", max_tokens=0)


def test_presets_carry_an_aggregation_that_options_can_override() -> None:
    assert preset_fields("local")["aggregation"] == "synthesize"
    assert preset_fields("local", aggregation="tally")["aggregation"] == "tally"
    with pytest.raises(MoAConfigError, match="aggregation must be one of 'synthesize', 'shuffle'"):
        preset_fields("local", aggregation="vote")


def test_a_served_configuration_is_checked_before_any_model_runs(introspection: object) -> None:
    with pytest.raises(MoAConfigError, match="max_tokens must be an integer >= 1, or unset"):
        make_graph({"configurable": {"preset": "local", "max_tokens": "lots"}}, runtime=introspection)


def test_every_option_is_documented_and_served_with_its_documentation() -> None:
    for name in option_names():
        assert MoAOptions.model_fields[name].description, name
        assert describe(name).endswith(".")
        if name != "agreement_embeddings":  # an object: it cannot travel in a served configuration
            assert (
                MoAConfiguration.model_fields[name].description == MoAOptions.model_fields[name].description
            )
    assert "preset" in MoAConfiguration.model_fields
    # MoAChatModel's fields are the options (plus the chat model's own).
    assert set(option_names()) <= set(MoAChatModel.model_fields)


def test_the_cache_key_holds_every_option_that_can_change_an_answer() -> None:
    key = MoAOptions(proposers=["a/x"], aggregator="b/y").answer_key()
    # Neither a concurrency bound nor a cost limit or price changes an answer.
    assert set(key) == set(option_names()) - {"max_concurrency", "max_cost", "prices"}


@pytest.mark.parametrize(
    "change",
    [
        {"proposal_quorum": 1},
        {"layer_deadline": 5.0},
        {"min_proposals": 2},
        {"proposer_timeout": 9.0},
        {"max_retries": 3},
    ],
)
def test_every_answer_changing_field_is_in_the_cache_key(change: dict[str, Any]) -> None:
    fields = {
        "proposers": [ScriptedChatModel(model_name="a"), ScriptedChatModel(model_name="b")],
        "aggregator": ScriptedChatModel(),
    }
    assert MoAChatModel(**fields)._get_llm_string() != MoAChatModel(**fields, **change)._get_llm_string()
