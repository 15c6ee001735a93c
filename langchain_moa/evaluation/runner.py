"""Resumable, concurrent generation: each finished item is journalled at once; a rerun does the rest.

An item that fails is recorded (with its error) in ``<output>.failures.json`` (only while some item
has failed; a JSON array, so that tools reading every ``*.jsonl`` of a folder, as FastChat does, never
mistake it for answers) and left out of the journal, so the next run retries it; nothing is ever
written as an empty answer. A journal whose last line was cut short by a kill is repaired before the
next run appends to it: that item is simply done again.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Hashable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from langchain_moa.errors import MoAConfigError

__all__ = ["Journal", "failures_path", "run_items", "write_atomically"]

_Item = TypeVar("_Item")


class Journal:
    """Finished records, one JSON line each, appended and flushed to disk as they finish."""

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self.key = key

    def read(self) -> dict[Hashable, dict[str, Any]]:
        """Every whole record, after cutting off a last line that a kill left half-written."""
        if not self.path.exists():
            return {}
        text = self.path.read_text()
        if text and not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]  # the fragment goes; its item is done again
            write_atomically(self.path, text)
        records: dict[Hashable, dict[str, Any]] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    msg = f"line {number} of {self.path} is not JSON: fix or delete it, then run again"
                    raise MoAConfigError(msg) from None
                records[record[self.key]] = record
        return records

    def append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())


def failures_path(output: Path) -> Path:
    """Where the items that failed are listed: beside the output, never named ``*.jsonl``."""
    return output.with_name(output.name + ".failures.json")


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


async def run_items(
    items: Sequence[_Item],
    key: Callable[[_Item], Hashable],
    answer: Callable[[_Item], Awaitable[dict[str, Any]]],
    journal: Journal,
    *,
    failures: Path,
    num_proc: int = 4,
    description: str = "generating",
    show_progress: bool = True,
) -> dict[Hashable, dict[str, Any]]:
    """Answer every item not yet in ``journal``, ``num_proc`` at a time; return every record."""
    done = journal.read()
    todo = [item for item in items if key(item) not in done]
    slots = asyncio.Semaphore(num_proc)
    failed: list[dict[str, Any]] = []

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not show_progress,
        transient=True,
    ) as progress:
        bar = progress.add_task(description, total=len(items), completed=len(items) - len(todo))

        async def one(item: _Item) -> None:
            async with slots:
                try:
                    record = await answer(item)
                except Exception as error:  # recorded, and retried by the next run
                    failed.append({journal.key: key(item), "error": f"{type(error).__name__}: {error}"})
                else:
                    journal.append(record)
                    done[key(item)] = record
                progress.advance(bar)

        await asyncio.gather(*(one(item) for item in todo))
    if failed:
        write_atomically(failures, json.dumps(failed, indent=2, ensure_ascii=False) + "\n")
    else:
        failures.unlink(missing_ok=True)
    return done
