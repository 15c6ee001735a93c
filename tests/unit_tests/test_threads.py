"""Threads: conversations kept in LangGraph's SQLite checkpointer, a turn stored once answered."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage

from langchain_moa import MoAChatModel
from langchain_moa.fakes import CallTally, ScriptedChatModel
from langchain_moa.threads import Threads, threads_path


def _moa(**aggregator: object) -> MoAChatModel:
    return MoAChatModel(
        proposers=[ScriptedChatModel(answer="idea")],
        aggregator=ScriptedChatModel(
            respond=lambda m, k: f"Answer after {sum(x.type != 'system' for x in m)} messages.", **aggregator
        ),
    )


async def test_each_answered_turn_is_kept_and_the_next_reads_the_whole_thread(tmp_path: Path) -> None:
    threads = Threads(tmp_path / "threads.sqlite")
    assert await threads.messages("ada") == []
    first = await threads.answer(_moa(), "ada", [HumanMessage("My name is Ada.")])
    second = await Threads(threads.path).answer(_moa(), "ada", [HumanMessage("And mine?")])  # a new process
    assert (first.text, second.text) == ("Answer after 1 messages.", "Answer after 3 messages.")
    kept = await threads.messages("ada")
    assert [(m.type, m.text) for m in kept] == [
        ("human", "My name is Ada."),
        ("ai", "Answer after 1 messages."),
        ("human", "And mine?"),
        ("ai", "Answer after 3 messages."),
    ]
    assert kept[1].response_metadata["moa"]["layers"][0][0]["content"] == "idea"  # the record is kept
    assert await threads.messages("other") == []


async def test_a_cancelled_or_failed_turn_leaves_the_thread_as_it_was(tmp_path: Path) -> None:
    threads = Threads(tmp_path / "threads.sqlite")
    await threads.answer(_moa(), "t", [HumanMessage("One.")])
    tally = CallTally()
    slow = asyncio.ensure_future(threads.answer(_moa(sleep=30, tally=tally), "t", [HumanMessage("Two.")]))
    while not tally.running:
        await asyncio.sleep(0.01)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    failing = MoAChatModel(
        proposers=[ScriptedChatModel(answer=RuntimeError("down"))], aggregator=ScriptedChatModel(answer="x")
    )
    with pytest.raises(Exception, match="down"):
        await threads.answer(failing, "t", [HumanMessage("Three.")])
    assert [m.text for m in await threads.messages("t")] == ["One.", "Answer after 1 messages."]


def test_the_threads_file_is_in_the_folder_the_environment_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGCHAIN_MOA_DATA", str(tmp_path / "data"))
    assert threads_path() == tmp_path / "data" / "threads.sqlite"
    assert Threads().path == tmp_path / "data" / "threads.sqlite"
