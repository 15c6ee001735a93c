"""Self-MoA (Li et al. 2025): one model sampled several times, its own answers aggregated.

Sampling one strong model often beats mixing models of uneven quality.

    python examples/self_moa.py              # WizardLM-2-8x22B on Together, or the local 0.5B model
    python examples/self_moa.py --fake
"""

from __future__ import annotations

from _backend import LOCAL, backend, models, parser

from langchain_moa import MoAChatModel
from langchain_moa.fakes import ScriptedChatModel

QUESTION = "Give one surprising fact about octopuses, in one sentence."


def main() -> None:
    args = parser(__doc__).parse_args()
    fake = ScriptedChatModel(
        respond=lambda m, _k: "Aggregated: octopuses have three hearts." if m[0].type == "system"
        else "Octopuses have three hearts.",
        model_name="fake-sampler",
    )  # fmt: skip
    model = {"together": "microsoft/WizardLM-2-8x22B", "local": LOCAL, "fake": fake}[backend(args)]
    # The same model proposes four times and aggregates its own samples.
    fields = {**models(args), "proposers": [model] * 4, "aggregator": model}
    answer = MoAChatModel(**fields, layers=2).invoke(QUESTION)
    samples = answer.response_metadata["moa"]["layers"][0]
    for p in samples:
        print(f"sample {p['index']} ({p['model']}): {p['content'] if p['error'] is None else p['error']}")
    print(f"aggregated: {answer.text}")
    print(f"{len(samples)} samples of {', '.join(sorted({p['model'] for p in samples}))}")


if __name__ == "__main__":
    main()
