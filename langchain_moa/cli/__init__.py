"""The ``moa`` command: ask once, chat, list presets, draw the graph, evaluate.

moa "Why is the sky blue?"              answer once (local models when no TOGETHER_API_KEY)
moa chat                                chat with history; Ctrl-C cancels an answer, Ctrl-D leaves
moa presets                             the named configurations
moa graph --preset together-moa         the MoA graph as a Mermaid drawing
moa eval ...                            the paper's benchmarks and exact-match comparisons
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from langchain_moa.cli.ask import ask, chat
from langchain_moa.cli.evaluate import eval_app
from langchain_moa.cli.options import ModelChoice, model_options
from langchain_moa.cli.output import consoles, fail, plain, print_table
from langchain_moa.errors import MoAError
from langchain_moa.presets import PRESETS

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
app.command()(ask)
app.command()(chat)
app.add_typer(eval_app, name="eval")


@app.command("presets")
def list_presets() -> None:
    """List the named configurations."""
    rows = [[p.name, f"{p.layers} layers", "\n".join(p.proposers), p.aggregator, p.needs, p.description]
            for p in PRESETS.values()]  # fmt: skip
    print_table(consoles()[0], ["preset", "layers", "proposers", "aggregator", "needs", "description"], rows)


@app.command("graph")
@model_options
def draw_graph(choice: ModelChoice) -> None:
    """Print the configured MoA graph as a Mermaid drawing (offline: no model is called)."""
    from langchain_moa.graph import build_moa_graph
    from langchain_moa.langgraph_app import stand_ins

    out, err = consoles()
    try:
        graph = build_moa_graph(**stand_ins(choice.model_fields()))
    except typer.BadParameter as error:
        raise fail(err, error, code=2) from None
    except (MoAError, ValueError) as error:
        raise fail(err, error) from None
    plain(out, graph.get_graph().draw_mermaid())


def main() -> None:
    """Console-script entry point."""
    app()
