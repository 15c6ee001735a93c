"""The ``moa`` command: ask once, chat, list presets, draw the graph.

moa "Why is the sky blue?"              answer once (local models when no TOGETHER_API_KEY)
moa chat                                chat with history; Ctrl-C cancels an answer, Ctrl-D leaves
moa presets                             the named configurations
moa graph --preset together-moa         the MoA graph as a Mermaid drawing
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import MessagesState
from pydantic import ValidationError
from rich.console import Console, Group
from rich.live import Live
from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from langchain_moa.deployment import draw_models
from langchain_moa.errors import MoAError
from langchain_moa.graph import AGGREGATOR_NODE, STREAM_MODES, MoAGraph, Proposal, build_moa_graph, run_config
from langchain_moa.presets import PRESETS, preset_fields

__all__ = ["app", "main"]


class _AskByDefault(TyperGroup):
    """``moa "question"`` means ``moa ask "question"``."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args.insert(0, "ask")
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=_AskByDefault,
    help='Mixture-of-Agents from the command line. Run `moa "your question"` to get an answer.',
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# -- options shared by ask, chat and graph (names and meaning from the reference bot.py) ---------

PresetOpt = Annotated[
    str | None,
    typer.Option(
        help="Named configuration (see `moa presets`). Default: together with TOGETHER_API_KEY, else local."
    ),
]
AggregatorOpt = Annotated[
    str | None, typer.Option(help="Aggregator model, e.g. Qwen/Qwen2.5-72B-Instruct-Turbo.")
]
ReferenceModelsOpt = Annotated[
    str | None, typer.Option("--reference-models", help="Proposer models, comma separated.")
]
TemperatureOpt = Annotated[float | None, typer.Option(min=0.0, help="Sampling temperature of every call.")]
MaxTokensOpt = Annotated[int | None, typer.Option("--max-tokens", min=1, help="Token limit of every answer.")]
RoundsOpt = Annotated[
    int | None, typer.Option(min=0, help="Proposer layers (= layers - 1), as in the paper's code.")
]
LayersOpt = Annotated[
    int | None, typer.Option(min=1, help="Layers as the paper counts them (proposer layers + 1).")
]
NumProcOpt = Annotated[int | None, typer.Option("--num-proc", min=1, help="Model calls at once.")]
ShowProposalsOpt = Annotated[bool, typer.Option("--show-proposals", help="Print every proposal too.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the answer, proposals and usage as JSON.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print just the answer.")]


@dataclass
class _Config:
    """The model options of one command line."""

    preset: str | None = None
    aggregator: str | None = None
    reference_models: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    rounds: int | None = None
    layers: int | None = None
    num_proc: int | None = None
    notices: list[str] = field(default_factory=list)

    def preset_name(self) -> str:
        if self.preset:
            return self.preset
        if os.environ.get("TOGETHER_API_KEY"):
            return "together"
        self.notices.append(
            "No TOGETHER_API_KEY set: using the local preset (Self-MoA on an embedded 0.5B model, offline)."
        )
        return "local"

    def model_fields(self) -> dict[str, Any]:
        """``MoAChatModel`` fields: the preset's, overridden by every option given."""
        if self.rounds is not None and self.layers is not None and self.layers != self.rounds + 1:
            msg = (
                f"--rounds {self.rounds} and --layers {self.layers} disagree (layers = rounds + 1); give one"
            )
            raise typer.BadParameter(msg)
        return preset_fields(
            self.preset_name(),
            proposers=self.reference_models,
            aggregator=self.aggregator,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            layers=self.layers if self.rounds is None else self.rounds + 1,
            max_concurrency=self.num_proc,
        )


# -- showing an answer ---------------------------------------------------------------------------


class _View:
    """What the terminal shows while MoA works: a live proposer table, then the streamed answer."""

    def __init__(self, console: Console, *, live: bool, quiet: bool, show_proposals: bool) -> None:
        self.console = console
        self.live_enabled = live and not quiet
        self.quiet = quiet
        self.show_proposals = show_proposals
        self.rows: dict[str, dict[str, Any]] = {}
        self.answer = ""
        self.live: Live | None = None

    def __enter__(self) -> _View:
        if self.live_enabled:
            self.live = Live(self._render(), console=self.console, refresh_per_second=8, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "proposer_start":
            if event["layer"] != next(iter(self.rows.values()), {}).get("layer", event["layer"]):
                self.rows.clear()  # a new layer: the table shows the current one
            self.rows[event["node"]] = {**event, "state": "waiting"}
        elif kind == "proposal":
            self.rows[event["node"]] = {**event, "state": "failed" if event["error"] else "done"}
        elif kind == "token":
            text = event["chunk"].text
            self.answer += text
            if not self.live_enabled and not self.quiet:
                _plain(self.console, text, end="")
        if self.live is not None:
            self.live.update(self._render())

    def _render(self) -> Group:
        table = Table(box=None, show_header=False, padding=(0, 1))
        for row in self.rows.values():
            if row["state"] == "waiting":
                status = Text("… waiting", style="yellow")
            elif row["state"] == "done":
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
            _plain(self.console, message.text)
        elif not self.live_enabled:
            _plain(self.console, "")
        if self.show_proposals:
            for layer in message.response_metadata["moa"]["layers"]:
                for p in layer:
                    _print_proposal(self.console, p)


def _print_proposal(console: Console, proposal: Proposal) -> None:
    head = f"--- layer {proposal['layer']} · proposer {proposal['index']} · {proposal['model']}"
    body = proposal["content"] if proposal["error"] is None else f"(failed: {proposal['error']})"
    _plain(console, f"{head}\n{body}")


async def _answer(
    graph: MoAGraph, layers: int, messages: Sequence[AnyMessage], view: _View, thread: str | None = None
) -> AIMessage:
    """Run the MoA graph, feeding its progress and tokens to ``view``.

    With a ``thread``, the graph's SQLite checkpointer keeps the conversation: ``messages`` is the new
    turn only, and every step is written before the next one starts (a killed process loses nothing).
    """
    answer: AIMessage | None = None
    state = MessagesState(messages=list(messages))
    async with _thread_store(graph, thread) as (runnable, config):
        events = runnable.astream(
            state,
            run_config(layers, **config),
            stream_mode=STREAM_MODES,
            durability="sync" if thread else None,
        )
        async for mode, data in cast("AsyncIterator[tuple[str, Any]]", events):
            if mode == "custom":
                view.event(data)
            elif AGGREGATOR_NODE in data:
                answer = data[AGGREGATOR_NODE]["messages"][-1]
    assert answer is not None  # the graph always ends in the aggregator
    return answer


def threads_path() -> Path:
    """The SQLite file of ``moa chat --thread``: ``$LANGCHAIN_MOA_DATA`` or the user's data directory."""
    from platformdirs import user_data_path

    folder = Path(os.environ.get("LANGCHAIN_MOA_DATA") or user_data_path("langchain-moa"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "threads.sqlite"


@asynccontextmanager
async def _thread_store(
    graph: MoAGraph, thread: str | None
) -> AsyncIterator[tuple[MoAGraph, RunnableConfig]]:
    """The graph with LangGraph's SQLite checkpointer for ``thread`` (as is without one)."""
    if thread is None:
        yield graph, RunnableConfig()
        return
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async with AsyncSqliteSaver.from_conn_string(str(threads_path())) as saver:
        yield graph.copy(update={"checkpointer": saver}), RunnableConfig(configurable={"thread_id": thread})


async def _thread_messages(graph: MoAGraph, thread: str) -> list[AnyMessage]:
    async with _thread_store(graph, thread) as (runnable, config):
        state = await runnable.aget_state(config)
    return list(state.values.get("messages", []))


def _as_json(message: AIMessage) -> str:
    moa = message.response_metadata["moa"]
    return json.dumps(
        {
            "answer": message.text,
            "model": message.response_metadata["model_name"],
            "usage": message.usage_metadata,
            "layers": moa["layers"],
            "aggregator": moa["aggregator"],
        },
        indent=2,
        ensure_ascii=False,
    )


def _consoles() -> tuple[Console, Console]:
    return Console(highlight=False, soft_wrap=True), Console(stderr=True, highlight=False, soft_wrap=True)


def _plain(console: Console, text: str, end: str = "\n") -> None:
    """Write text as is (no wrapping, markup or tab expansion): for pipes, files and --quiet."""
    console.file.write(text + end)
    console.file.flush()


def _fail(err: Console, error: BaseException, code: int = 1) -> typer.Exit:
    """One line on stderr and a non-zero exit, never a traceback."""
    if isinstance(error, ValidationError):
        text = "; ".join(e["msg"].removeprefix("Value error, ") for e in error.errors())
    else:
        text = str(error) or type(error).__name__
    _plain(err, f"moa: error: {text}")
    return typer.Exit(code)


def _build(config: _Config, err: Console, *, draw: bool = False) -> tuple[MoAGraph, int]:
    """The configured MoA graph and its layer count (with stand-in models when only drawing)."""
    try:
        fields = config.model_fields()
        for notice in config.notices:
            _plain(err, notice)
        return build_moa_graph(**(draw_models(fields) if draw else fields)), fields["layers"]
    except typer.BadParameter as error:
        raise _fail(err, error, code=2) from None
    except (MoAError, ValueError) as error:
        raise _fail(err, error) from None


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    preset: PresetOpt = None,
    aggregator: AggregatorOpt = None,
    reference_models: ReferenceModelsOpt = None,
    temperature: TemperatureOpt = None,
    max_tokens: MaxTokensOpt = None,
    rounds: RoundsOpt = None,
    layers: LayersOpt = None,
    num_proc: NumProcOpt = None,
    show_proposals: ShowProposalsOpt = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Answer one question and exit (also `moa "question"`)."""
    out, err = _consoles()
    config = _Config(preset, aggregator, reference_models, temperature, max_tokens, rounds, layers, num_proc)
    graph, n_layers = _build(config, err)
    view = _View(
        out, live=out.is_terminal and not as_json, quiet=quiet or as_json, show_proposals=show_proposals
    )
    try:
        with view:
            message = asyncio.run(_answer(graph, n_layers, [HumanMessage(question)], view))
    except KeyboardInterrupt:
        _plain(err, "cancelled")
        raise typer.Exit(130) from None
    except MoAError as error:
        raise _fail(err, error) from None
    if as_json:
        _plain(out, _as_json(message))
    else:
        view.finish(message)


@app.command()
def chat(
    preset: PresetOpt = None,
    aggregator: AggregatorOpt = None,
    reference_models: ReferenceModelsOpt = None,
    temperature: TemperatureOpt = None,
    max_tokens: MaxTokensOpt = None,
    rounds: RoundsOpt = None,
    layers: LayersOpt = None,
    num_proc: NumProcOpt = None,
    multi_turn: Annotated[bool, typer.Option(help="Keep the conversation's history.")] = True,
    thread: Annotated[
        str | None,
        typer.Option(
            help="Keep the conversation in a named thread, resumed by the next `moa chat --thread`."
        ),
    ] = None,
    show_proposals: ShowProposalsOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Chat at a `>>>` prompt. `exit` or Ctrl-D leaves; Ctrl-C cancels the running answer."""
    out, err = _consoles()
    if thread is not None and not multi_turn:
        raise _fail(err, ValueError("--thread keeps the history; drop --no-multi-turn"), code=2)
    config = _Config(preset, aggregator, reference_models, temperature, max_tokens, rounds, layers, num_proc)
    graph, n_layers = _build(config, err)
    history: list[AnyMessage] = []
    if thread is not None:
        earlier = asyncio.run(_thread_messages(graph, thread))
        _plain(err, f"Thread {thread!r}: {len(earlier)} earlier messages ({threads_path()}).")
    while True:
        try:
            line = out.input(">>> ")
        except (EOFError, KeyboardInterrupt):
            _plain(out, "")
            return
        question = line.strip()
        if question in {"exit", "quit"}:
            return
        if not question:
            continue
        # With a thread the checkpointer holds the history; the turn is the new question alone.
        turn: list[AnyMessage] = (
            [*history, HumanMessage(question)] if multi_turn and not thread else [HumanMessage(question)]
        )
        view = _View(out, live=out.is_terminal, quiet=quiet, show_proposals=show_proposals)
        try:
            with view:
                message = asyncio.run(_answer(graph, n_layers, turn, view, thread))
        except KeyboardInterrupt:
            _plain(err, "(answer cancelled)")
            continue
        except MoAError as error:
            _plain(err, f"moa: error: {error}")
            continue
        view.finish(message)
        if multi_turn and not thread:
            history = [*turn, AIMessage(message.text)]


def print_table(
    console: Console, header: Sequence[str], rows: Sequence[Sequence[str]], title: str = ""
) -> None:
    """A table: drawn on a terminal, tab-separated lines (with no header) for pipes and files."""
    if console.is_terminal:
        table = Table(
            *header, title=title or None, show_lines=any("\n" in cell for row in rows for cell in row)
        )
        for row in rows:
            table.add_row(*row)
        console.print(table)
    else:
        for row in rows:
            _plain(console, "\t".join(cell.replace("\n", ", ") for cell in row))


@app.command("presets")
def list_presets() -> None:
    """List the named configurations."""
    rows = [[p.name, f"{p.layers} layers", "\n".join(p.proposers), p.aggregator, p.needs, p.description]
            for p in PRESETS.values()]  # fmt: skip
    print_table(_consoles()[0], ["preset", "layers", "proposers", "aggregator", "needs", "description"], rows)


@app.command("graph")
def draw_graph(
    preset: PresetOpt = None,
    aggregator: AggregatorOpt = None,
    reference_models: ReferenceModelsOpt = None,
    rounds: RoundsOpt = None,
    layers: LayersOpt = None,
) -> None:
    """Print the configured MoA graph as a Mermaid drawing (offline: no model is called)."""
    out, err = _consoles()
    config = _Config(preset, aggregator, reference_models, rounds=rounds, layers=layers)
    graph, _ = _build(config, err, draw=True)
    _plain(out, graph.get_graph().draw_mermaid())


# `moa eval ...` (registered last: it builds on this module's options).
from langchain_moa.evaluation.cli import eval_app  # noqa: E402

app.add_typer(eval_app, name="eval")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
