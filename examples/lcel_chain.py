"""LCEL: ``prompt | MoAChatModel | parser``, batched over several inputs.

python examples/lcel_chain.py            # Together with TOGETHER_API_KEY, else local models
python examples/lcel_chain.py --fake
"""

from __future__ import annotations

from _backend import models, parser
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_moa import MoAChatModel

TOPICS = ["tea", "the moon", "bicycles"]


def scripted_aggregator(messages, _kwargs) -> str:  # repeats the topic it was asked about
    return f"Slogan: {messages[-1].text.removeprefix('A slogan about ').rstrip('.')}!"


def main() -> None:
    args = parser(__doc__).parse_args()
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You write one-line slogans."), ("human", "A slogan about {topic}.")]
    )
    chain = (
        prompt | MoAChatModel(**models(args, n=3, fake_aggregator=scripted_aggregator)) | StrOutputParser()
    )
    for topic, slogan in zip(TOPICS, chain.batch([{"topic": t} for t in TOPICS]), strict=True):
        print(f"{topic}: {slogan.strip()}")


if __name__ == "__main__":
    main()
