"""Structured output through MoA: ``with_structured_output(PydanticModel)``.

Proposers answer in prose; the aggregator synthesises their answers into the schema.

    python examples/structured_output.py         # Together with TOGETHER_API_KEY
    python examples/structured_output.py --fake  # scripted models (the default without a key)
"""

from __future__ import annotations

from _backend import backend, models, parser
from langchain_core.messages import AIMessage
from pydantic import BaseModel, Field

from langchain_moa import MoAChatModel


class Movie(BaseModel):
    """A film and the facts asked about it."""

    title: str = Field(description="the film's title")
    year: int = Field(description="year of release")
    director: str = Field(description="the director's full name")


def scripted_aggregator(messages, kwargs):  # fills the schema it is given, as a tool call
    (schema,) = kwargs["tools"]
    args = {"title": "Spirited Away", "year": 2001, "director": "Hayao Miyazaki"}
    return AIMessage("", tool_calls=[{"name": schema["function"]["name"], "args": args, "id": "call_1"}])


def main() -> None:
    args = parser(__doc__).parse_args()
    args.backend = backend(args, calls_tools=True)
    moa = MoAChatModel(**models(args, n=3, fake_aggregator=scripted_aggregator))
    movie = moa.with_structured_output(Movie).invoke(
        "Which film won the 2003 Academy Award for Animated Feature?"
    )
    print(repr(movie))
    print(f"{movie.title} ({movie.year}), directed by {movie.director}")


if __name__ == "__main__":
    main()
