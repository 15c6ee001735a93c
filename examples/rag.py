"""Retrieval-augmented generation: BM25 over ``examples/data/``, MoA answering with its sources.

A real lexical ranking (``rank-bm25``) picks the passages; MoA answers from them and cites them.

    pip install "langchain-moa[examples]"
    python examples/rag.py "Why is the sky blue?"          # Together with TOGETHER_API_KEY, else local
    python examples/rag.py --fake "What causes tides?"
"""

from __future__ import annotations

import re
from pathlib import Path

from _backend import models, parser
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnablePassthrough
from rank_bm25 import BM25Okapi

from langchain_moa import MoAChatModel

DATA = Path(__file__).with_name("data")


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


class BM25Retriever(BaseRetriever):
    """The ``k`` documents that best match a query under Okapi BM25."""

    documents: list[Document]
    k: int = 2

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        scores = BM25Okapi([_words(d.page_content) for d in self.documents]).get_scores(_words(query))
        ranked = sorted(zip(scores, self.documents, strict=True), key=lambda pair: -pair[0])
        return [document for score, document in ranked[: self.k] if score > 0]


def load_documents() -> list[Document]:
    return [
        Document(page_content=p.read_text(), metadata={"source": p.name}) for p in sorted(DATA.glob("*.md"))
    ]


PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer from the context only, in two sentences, and cite the source file in brackets, "
                   "like [tides.md].\n\nContext:\n{context}"),
        ("human", "{question}"),
    ]
)  # fmt: skip


NOTHING_FOUND = "(no document matches the question)"


def format_context(documents: list[Document]) -> str:
    if not documents:  # the model is told so, and says it cannot answer from the context
        return NOTHING_FOUND
    return "\n\n".join(f"[{d.metadata['source']}]\n{d.page_content}" for d in documents)


def scripted_aggregator(messages, _kwargs):  # quotes the first retrieved passage, with its source
    context = messages[0].text.split("Context:\n", 1)[1]
    passage = re.match(r"\[([^\]]+)\]\n#[^\n]*\n\n([^.]+\.)", context)
    if passage is None:
        return "The documents say nothing about this."
    source, body = passage.groups()
    return f"{' '.join(body.split())} [{source}]"


def main() -> None:
    p = parser(__doc__)
    p.add_argument("question", nargs="?", default="Why is the sky blue?")
    args = p.parse_args()
    retriever = BM25Retriever(documents=load_documents())
    sources = retriever.invoke(args.question)
    moa = MoAChatModel(**models(args, n=3, fake_aggregator=scripted_aggregator))
    chain = (
        {"context": retriever | format_context, "question": RunnablePassthrough()}
        | PROMPT
        | moa
        | StrOutputParser()
    )
    print(f"Q: {args.question}")
    print(f"A: {chain.invoke(args.question).strip()}")
    print("Sources: " + (", ".join(d.metadata["source"] for d in sources) or "none matched"))


if __name__ == "__main__":
    main()
