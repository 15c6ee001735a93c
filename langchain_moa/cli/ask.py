"""``moa ask`` (also ``moa "question"``) and ``moa chat``: answers through ``MoAChatModel``.

Both go the way any Python caller goes: ``MoAChatModel.ainvoke``, with a ``View`` observing the run
events. ``moa chat --thread NAME`` keeps the conversation in a thread (``langchain_moa.threads``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from langchain_moa.cli.options import ModelChoice, model_options
from langchain_moa.cli.output import View, as_json, consoles, fail, plain, summary
from langchain_moa.errors import MoAError

if TYPE_CHECKING:  # imported when a command runs: `moa --help` and `moa presets` start fast
    from langchain_core.messages import AIMessage, BaseMessage
    from rich.console import Console

    from langchain_moa.chat_models import MoAChatModel

__all__ = ["ask", "build_model", "chat"]

ShowProposalsOpt = Annotated[bool, typer.Option("--show-proposals", help="Print every proposal too.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print just the answer.")]


def build_model(choice: ModelChoice, err: Console, *, quiet: bool = False, **overrides: Any) -> MoAChatModel:
    """The configured MoA; a bad option or model is one line on stderr and a non-zero exit."""
    from langchain_moa.chat_models import MoAChatModel

    try:
        fields = choice.model_fields()
        for notice in [] if quiet else choice.notices():
            plain(err, notice)
        return MoAChatModel(**{**fields, **overrides})
    except typer.BadParameter as error:
        raise fail(err, error, code=2) from None
    except (MoAError, ValueError) as error:
        raise fail(err, error) from None


@model_options
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    choice: ModelChoice,
    show_proposals: ShowProposalsOpt = False,
    as_json_output: Annotated[
        bool, typer.Option("--json", help="Print the answer, proposals and usage as JSON.")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Answer one question and exit (also `moa "question"`; options go before or after it)."""
    out, err = consoles()
    if not question.strip():
        raise fail(
            err, ValueError('the question is empty: ask something, e.g. moa "Why is the sky blue?"'), code=2
        )
    moa = build_model(choice, err, quiet=quiet or as_json_output)
    from langchain_core.messages import HumanMessage

    live = out.is_terminal and not as_json_output
    view = View(out, live=live, quiet=quiet or as_json_output, show_proposals=show_proposals)
    try:
        with view:
            message = asyncio.run(_answer(moa, [HumanMessage(question)], view))
    except KeyboardInterrupt:
        plain(err, "cancelled")
        raise typer.Exit(130) from None
    except MoAError as error:
        raise fail(err, error) from None
    if as_json_output:
        plain(out, as_json(message))
    else:
        view.finish(message)
        if not quiet:
            plain(err, summary(message))
    note_if_cut(message, err)


def note_if_cut(message: AIMessage, err: Console) -> None:
    """Say so when the aggregator ran out of tokens: the answer ends mid-sentence for a reason."""
    from langchain_moa.conversation import was_cut

    if was_cut(message):
        plain(err, "(the answer was cut at the token limit: raise --max-tokens to read all of it)")


async def _answer(
    moa: MoAChatModel, messages: Sequence[BaseMessage], view: View, thread: str | None = None
) -> AIMessage:
    """Answer the conversation, ``view`` watching; with a ``thread``, ``messages`` is the new turn,
    the thread's stored history comes first, and the answered turn is stored."""
    from langchain_moa.events import observe
    from langchain_moa.threads import Threads

    with observe(view):
        if thread is None:
            return await moa.ainvoke(list(messages))  # type: ignore[return-value]
        return await Threads().answer(moa, thread, messages)


@model_options
def chat(
    choice: ModelChoice,
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
    out, err = consoles()
    if thread is not None and not multi_turn:
        raise fail(err, ValueError("--thread keeps the history; drop --no-multi-turn"), code=2)
    moa = build_model(choice, err, quiet=quiet)
    from langchain_core.messages import AIMessage, HumanMessage

    from langchain_moa.threads import Threads

    # One event loop for the whole session, as a provider's async client expects (not one per turn).
    with asyncio.Runner() as runner:
        history: list[BaseMessage] = []
        if thread is not None:
            threads = Threads()
            earlier = runner.run(threads.messages(thread))
            plain(err, f"Thread {thread!r}: {len(earlier)} earlier messages ({threads.path}).")
        while True:
            try:
                line = out.input(">>> ")
            except (EOFError, KeyboardInterrupt):
                plain(out, "")
                return
            question = line.strip()
            if question in {"exit", "quit"}:
                return
            if not question:
                continue
            # With a thread the checkpointer holds the history; the turn is the new question alone.
            turn = (
                [*history, HumanMessage(question)] if multi_turn and not thread else [HumanMessage(question)]
            )
            view = View(out, live=out.is_terminal, quiet=quiet, show_proposals=show_proposals)
            try:
                with view:
                    message = runner.run(_answer(moa, turn, view, thread))
            except KeyboardInterrupt:
                plain(err, "(answer cancelled)")
                continue
            except MoAError as error:
                plain(err, f"moa: error: {error}")
                continue
            view.finish(message)
            note_if_cut(message, err)
            if multi_turn and not thread:
                history = [*turn, AIMessage(message.text)]
