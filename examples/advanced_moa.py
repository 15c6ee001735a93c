"""Three layers: what each layer proposed, then the final answer.

From layer 2 on, every proposer sees the previous layer's answers and refines them.

    python examples/advanced_moa.py          # Together with TOGETHER_API_KEY, else local models
    python examples/advanced_moa.py --fake
"""

from __future__ import annotations

from _backend import models, parser

from langchain_moa import MoAChatModel

QUESTION = "In two sentences: why do leaves change color in autumn?"


def refine(index: int):  # the fake proposers say which layer they are in
    def respond(messages, _kwargs) -> str:
        seen = messages[0].text.count("\n1. ") if messages[0].type == "system" else 0
        return f"Proposer {index + 1}, {'refining the previous layer' if seen else 'first draft'}."

    return respond


def main() -> None:
    args = parser(__doc__).parse_args()
    moa = MoAChatModel(**models(args, n=3, fake_proposer=refine), layers=3)
    answer = moa.invoke(QUESTION)
    for number, layer in enumerate(answer.response_metadata["moa"]["layers"], start=1):
        print(f"== layer {number}")
        for p in layer:
            text = p["content"] if p["error"] is None else f"(failed: {p['error']})"
            print(f"-- {p['model']} ({p['latency_s']:.1f}s): {text}")
    print(f"== final answer\n{answer.text}")


if __name__ == "__main__":
    main()
