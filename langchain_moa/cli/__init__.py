"""The ``moa`` command: ask once, chat, list presets, draw the graph, evaluate.

moa "Why is the sky blue?"              answer once (local models when no TOGETHER_API_KEY)
moa chat                                chat with history; Ctrl-C cancels an answer, Ctrl-D leaves
moa presets                             the named configurations
moa graph --preset together-moa         the MoA graph as a Mermaid drawing
moa weights install                     the embedded model's weights (pinned, verified)
moa eval ...                            the paper's benchmarks and exact-match comparisons
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from langchain_moa.cli.ask import ask, chat
from langchain_moa.cli.evaluate import eval_app
from langchain_moa.cli.options import ModelChoice, model_options
from langchain_moa.cli.output import consoles, fail, plain, print_table
from langchain_moa.cli.serve import serve
from langchain_moa.cli.weights import weights_app
from langchain_moa.errors import MoAError
from langchain_moa.presets import PRESETS

__all__ = ["app", "main"]


class _AskByDefault(TyperGroup):
    """``moa [options] "question" [options]`` means ``moa ask ...``: asking is the main use."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        own = {"--help", "-h", "--version"}
        if args and not any(a in self.commands for a in args) and not (set(args) & own and len(args) == 1):
            args = ["ask", *args]
        return super().parse_args(ctx, args)


_HELP = """Mixture-of-Agents from the command line.

\b
  moa "Why is the sky blue?"                  answer once (local models when no TOGETHER_API_KEY)
  moa --json --max-tokens 96 "Why is it?"     options go before or after the question
  moa "Why?" --preset together --show-proposals
  moa chat                                    chat; Ctrl-C cancels an answer, Ctrl-D leaves
  moa serve --preset local                    an OpenAI-compatible server on 127.0.0.1:8000
  moa weights install                         the embedded model's weights, pinned and verified
  moa presets | moa graph | moa eval ...      named configurations, the drawing, the benchmarks

\b
Options of asking (all of them: moa ask --help):
  --preset NAME  --reference-models A,B  --aggregator M  --layers N  --temperature T
  --max-tokens N  --num-proc N  --show-proposals  --json  --quiet
"""


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        plain(consoles()[0], f"moa (langchain-moa) {version('langchain-moa')}")
        raise typer.Exit()


app = typer.Typer(
    cls=_AskByDefault,
    help=_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_version)
    ] = False,
) -> None:
    """Mixture-of-Agents from the command line."""


app.command()(ask)
app.command()(chat)
app.command()(serve)
app.add_typer(eval_app, name="eval")
app.add_typer(weights_app, name="weights")


@app.command("presets")
def list_presets() -> None:
    """List the named configurations."""
    columns = ["preset", "layers", "proposers", "aggregator", "aggregation", "needs", "description"]
    rows = [[p.name, f"{p.layers} layers", "\n".join(p.proposers), p.aggregator, p.aggregation, p.needs,
             p.description] for p in PRESETS.values()]  # fmt: skip
    print_table(consoles()[0], columns, rows)


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
    """Console-script entry point: bad usage exits 2 and a failed run 1, each with one line on stderr."""
    try:
        code = app(standalone_mode=False)
    except typer.Abort:  # Ctrl-C outside an answer
        raise SystemExit(130) from None
    except typer.TyperException as error:  # the parser's own: a value that is not a number, a bad flag
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        plain(consoles()[1], f"moa: error: {message}")
        raise SystemExit(getattr(error, "exit_code", 2)) from None
    raise SystemExit(code if isinstance(code, int) else 0)
