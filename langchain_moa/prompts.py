"""The aggregate-and-synthesize prompt of the paper and how references are injected.

Both follow the reference implementation (``togethercomputer/MoA``, ``utils.py``) exactly:
the references are appended to the prompt as ``"\\n{i}. {response}"`` counting from 1 in proposer
order, and the block joins an existing leading system message after ``"\\n\\n"`` or becomes a new
leading system message.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import BaseMessage, SystemMessage

__all__ = ["AGGREGATOR_PROMPT", "inject_references", "references_block"]

AGGREGATOR_PROMPT = (
    "You have been provided with a set of responses from various open-source models to the latest"
    " user query. Your task is to synthesize these responses into a single, high-quality response."
    " It is crucial to critically evaluate the information provided in these responses, recognizing"
    " that some of it may be biased or incorrect. Your response should not simply replicate the"
    " given answers but should offer a refined, accurate, and comprehensive reply to the"
    " instruction. Ensure your response is well-structured, coherent, and adheres to the highest"
    " standards of accuracy and reliability.\n\nResponses from models:"
)
"""The paper's aggregator prompt, byte for byte (Wang et al. 2024, Table 1)."""


def references_block(prompt: str, references: Sequence[str]) -> str:
    """Return ``prompt`` followed by the numbered references.

    Examples:
        >>> references_block("Responses:", ["Paris.", "It is Paris."])
        'Responses:\\n1. Paris.\\n2. It is Paris.'
    """
    return prompt + "".join(f"\n{i}. {ref}" for i, ref in enumerate(references, start=1))


def inject_references(
    messages: Sequence[BaseMessage], prompt: str, references: Sequence[str]
) -> list[BaseMessage]:
    """Return a copy of ``messages`` carrying ``references`` in its leading system message.

    With no references the conversation is returned unchanged (as the paper's code does). The
    caller's messages are never mutated: a changed system message is a copy.
    """
    if not references:
        return list(messages)
    block = references_block(prompt, references)
    if messages and isinstance(messages[0], SystemMessage):
        system = messages[0]
        content: str | list[str | dict]
        if isinstance(system.content, str):
            content = system.content + "\n\n" + block
        else:
            content = [*system.content, {"type": "text", "text": "\n\n" + block}]
        return [system.model_copy(update={"content": content}), *messages[1:]]
    return [SystemMessage(content=block), *messages]
