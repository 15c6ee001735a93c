"""What the ``moa`` command prints: the live proposer view, plain text for pipes, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import typer
from pydantic import ValidationError
from rich.console import Console, Group
from rich.live import Live
from rich.markdown import Markdown
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from langchain_moa.errors import InvalidConversationError, MoAConfigError

if TYPE_CHECKING:
    from langchain_core.messages import AIMessage

    from langchain_moa.events import MoAEvent
    from langchain_moa.state import Proposal

__all__ = ["View", "as_json", "consoles", "fail", "plain", "print_table", "summary"]


def consoles() -> tuple[Console, Console]:
    """The consoles of standard output and standard error."""
    return Console(highlight=False, soft_wrap=True), Console(stderr=True, highlight=False, soft_wrap=True)


def plain(console: Console, text: str, end: str = "\n") -> None:
    """Write text as is (no wrapping, markup or tab expansion): for pipes, files and --quiet."""
    console.file.write(text + end)
    console.file.flush()


def fail(err: Console, error: BaseException, code: int | None = None) -> typer.Exit:
    """One line on stderr and a non-zero exit, never a traceback: 2 for bad usage (a bad option or
    configuration, an unknown preset or provider, a missing key: nothing ran), 1 for a run that failed."""
    if code is None:
        code = 2 if isinstance(error, MoAConfigError | InvalidConversationError | typer.BadParameter) else 1
    if isinstance(error, ValidationError):
        text = "; ".join(e["msg"].removeprefix("Value error, ") for e in error.errors())
    else:
        text = str(error) or type(error).__name__
    plain(err, f"moa: error: {text}")
    return typer.Exit(code)


class View:
    """What the terminal shows while MoA works: a live proposer table, then the streamed answer.

    It is a MoA observer (``langchain_moa.observe``): it reads the same run events as every consumer.
    """

    def __init__(self, console: Console, *, live: bool, quiet: bool, show_proposals: bool) -> None:
        self.console = console
        self.live_enabled = live and not quiet
        self.quiet = quiet
        self.show_proposals = show_proposals
        self.rows: dict[str, dict[str, Any]] = {}
        self.answer = ""
        self.live: Live | None = None

    def __enter__(self) -> View:
        if self.live_enabled:
            # The live view wraps its lines itself: with soft wrap, a terminal would cut each line at
            # its width and never show the rest.
            self.soft_wrap, self.console.soft_wrap = self.console.soft_wrap, False
            self.live = Live(self._render(), console=self.console, refresh_per_second=8, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)
            # The last view printed for good: a live view taller than the window is cut to fit it.
            self.console.print(self._render())
            self.console.soft_wrap = self.soft_wrap

    def __call__(self, event: MoAEvent) -> None:
        from langchain_moa.events import Agreed, ProposalChunk, ProposalReady, ProposerStarted, Token

        if isinstance(event, Agreed):  # the rows of what will not run say so
            for node in event.skipped:
                why = (
                    f"skipped: proposals {event.agreeing} agreed"
                    if event.agreeing
                    else "skipped: others agreed"
                )
                self.rows[node] = {"layer": "·", "index": "", "model": node, "state": "skipped", "why": why}
        elif isinstance(event, ProposalChunk):  # staircase: the proposal streams to the aggregator
            row = self.rows.get(event.node)
            if row is not None:
                row["streamed"] = row.get("streamed", 0) + 1
        elif isinstance(event, ProposerStarted):
            if event.layer != next(iter(self.rows.values()), {}).get("layer", event.layer):
                self.rows.clear()  # a new layer: the table shows the current one
            self.rows[event.node] = {"layer": event.layer, "index": event.index, "model": event.model}
        elif isinstance(event, ProposalReady):
            proposal = event.proposal
            self.rows[proposal["node"]] = {**proposal, "state": "failed" if proposal["error"] else "done"}
        elif isinstance(event, Token):
            text = event.chunk.text
            self.answer += text
            if not self.live_enabled and not self.quiet:
                plain(self.console, text, end="")
        if self.live is not None:
            self.live.update(self._render())

    def _render(self) -> Group:
        table = Table(box=None, show_header=False, padding=(0, 1))
        for row in self.rows.values():
            state = row.get("state")
            if state is None and row.get("streamed"):
                status = Text(f"… writing, {row['streamed']} tokens", style="yellow")
            elif state is None:
                status = Text("… waiting", style="yellow")
            elif state == "skipped":
                status = Text(f"- {row['why']}", style="dim")
            elif state == "done":
                tokens = (row.get("usage") or {}).get("output_tokens", "?")
                status = Text(f"✓ {row['latency_s']:.1f}s, {tokens} tokens", style="green")
            else:
                status = Text(f"✗ {row['error']}", style="red")
            table.add_row(Text(f"layer {row['layer']} #{row['index']} {row['model']}", style="bold"), status)
        parts: list[Any] = [table] if self.rows else []
        if self.answer:
            parts.append(Markdown(self.answer))
        return Group(*parts)

    def finish(self, message: AIMessage) -> None:
        if self.quiet:
            plain(self.console, message.text)
        elif not self.live_enabled:
            plain(self.console, "")
        if self.show_proposals:
            for layer in message.response_metadata["moa"]["layers"]:
                for p in layer:
                    _print_proposal(self.console, p)


def _print_proposal(console: Console, proposal: Proposal) -> None:
    head = f"--- layer {proposal['layer']} · proposer {proposal['index']} · {proposal['model']}"
    body = proposal["content"] if proposal["error"] is None else f"(failed: {proposal['error']})"
    plain(console, f"{head}\n{body}")


def summary(message: AIMessage) -> str:
    """One line after the answer: tokens and cost, and what agreement saved."""
    moa = message.response_metadata["moa"]
    usage = message.usage_metadata
    tokens = f"{usage['total_tokens']:,} tokens" if usage else "tokens unknown (a model reported none)"
    cost = moa.get("cost") or {}
    if cost.get("total") is not None:
        money = f"${cost['total']:.6f}"
    else:
        unpriced = ", ".join(cost.get("unknown_prices") or [])
        money = (
            f"cost unknown (no price for {unpriced}: --prices)"
            if unpriced
            else "cost unknown (a call reported no usage)"
        )
    saved = ""
    if "early_exit" in moa and "chosen" in moa["early_exit"] and "declined" not in moa["early_exit"]:
        saved = f" · proposals agreed: answered with proposal {moa['early_exit']['chosen']}, no aggregator"
    elif moa.get("skipped"):
        saved = f" · {len(moa['skipped'])} proposers skipped (the first agreed)"
    return f"{tokens} · {money}{saved}"


def as_json(message: AIMessage) -> str:
    """The answer, its proposals and usage as JSON (``--json``)."""
    moa = message.response_metadata["moa"]
    return json.dumps(
        {
            "answer": message.text,
            "model": message.response_metadata["model_name"],
            "usage": message.usage_metadata,
            "layers": moa["layers"],
            "aggregator": moa["aggregator"],
            # what the strategy did, staircase's rounds, agreement's savings, what it cost
            **{
                key: moa[key]
                for key in ("aggregation", "staircase", "early_exit", "skipped", "cost")
                if key in moa
            },
        },
        indent=2,
        ensure_ascii=False,
    )


def print_table(
    console: Console, header: Sequence[str], rows: Sequence[Sequence[str]], title: str = ""
) -> None:
    """A table: drawn on a terminal, tab-separated lines (with no header) for pipes and files."""
    if console.is_terminal:
        table = Table(
            *header, title=title or None, show_lines=any("\n" in cell for row in rows for cell in row)
        )
        for row in rows:
            table.add_row(*map(escape, row))  # text, not markup: `pip install "x[local]"` stays whole
        console.print(table)
    else:
        for row in rows:
            plain(console, "\t".join(cell.replace("\n", ", ") for cell in row))
