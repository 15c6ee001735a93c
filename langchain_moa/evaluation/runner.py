"""Resumable, concurrent generation: each finished item is journalled at once; a rerun does the rest.

An item that fails is recorded (with its error) in ``<output>.failed.jsonl`` and left out of the
journal, so the next run retries it; nothing is ever written as an empty answer.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Hashable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = ["Journal", "run_items"]

_Item = TypeVar("_Item")


class Journal:
    """Finished records, one JSON line each, appended and flushed to disk as they finish."""

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self.key = key

    def read(self) -> dict[Hashable, dict[str, Any]]:
        if not self.path.exists():
            return {}
        records: dict[Hashable, dict[str, Any]] = {}
        for line in self.path.read_text().splitlines():
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a kill: that item is redone
                    continue
                records[record[self.key]] = record
        return records

    def append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())


def failures_path(output: Path) -> Path:
    return output.with_name(output.name + ".failed.jsonl")


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
    write_atomically(failures, "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in failed))
    return done
