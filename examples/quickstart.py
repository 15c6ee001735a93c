"""Quickstart: four proposers, two layers, the aggregated answer streamed as it is written.

The reference implementation's 50-line example, as a LangChain chat model.

    python examples/quickstart.py            # Together with TOGETHER_API_KEY, else local models
    python examples/quickstart.py --fake     # scripted models, instant
"""

from __future__ import annotations

from _backend import models, parser

from langchain_moa import MoAChatModel

QUESTION = "Top things to do in NYC"


def main() -> None:
    args = parser(__doc__).parse_args()
    moa = MoAChatModel(**models(args, n=4), layers=2)
    print(f"Q: {QUESTION}\nA: ", end="")
    answer = None
    for chunk in moa.stream(QUESTION):
        print(chunk.text, end="", flush=True)
        answer = chunk if answer is None else answer + chunk
    assert answer is not None
    proposals = answer.response_metadata["moa"]["layers"][0]
    print(
        f"\n\n({len(proposals)} proposals aggregated; {answer.usage_metadata['total_tokens']} tokens in all)"
    )


if __name__ == "__main__":
    main()
