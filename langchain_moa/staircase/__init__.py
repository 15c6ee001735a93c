"""Staircase aggregation (Wang et al. 2025, arXiv 2510.05059): the aggregator writes while the last
layer's proposers are still streaming.

With ``staircase=N``, the last layer's proposers stream their answers into a ``Staircase`` that the
aggregator shares (its node runs in the same superstep, beside them). The aggregator starts once every
proposer has written its first N tokens (or finished, or failed) and writes at most N tokens; then it
takes in what the proposers wrote meanwhile, waiting until each has written N more or finished, and
writes its next N tokens; and so on. Once the proposals are complete it writes the rest of its answer.
Tokens are counted as streamed chunks (one token each from OpenAI-compatible servers).

Round 1 is the paper's layout exactly, with the first chunks as the references. Each later round
appends the proposals' new text as a user message; the layouts (``staircase_layout``) differ in where
the aggregator's answer so far goes. ``"turns"``, which any chat API takes, appends each round's text
as an assistant turn before the next round's references: the prompt only ever grows at its end, so
llama.cpp's and vLLM's prefix caches reuse every earlier round, but each round is a new turn, and a
small model may begin its answer again::

    [system: the paper's prompt + "\\n1. {proposal 1's first chunk}\\n2. ..."] + the conversation
    + [assistant: the aggregator's round-1 text]
    + [user: "The responses continue:\\n1. {what proposal 1 wrote since}\\n2. ...\\n\\n" + how to go on]
    + [assistant: round-2 text] + ...

``"prefill"`` keeps the answer one assistant message, last, which the model continues (llama.cpp's
server does; OpenAI's chat API would start a new message); a prefix cache reuses everything before
the newest references, and processes those and the answer so far again::

    [system: the paper's prompt + "\\n1. {proposal 1's first chunk}\\n2. ..."] + the conversation
    + [user: "The responses continue:\\n1. ..."] + [user: the next round's new text] + ...
    + [assistant: the answer so far]

The answer is the rounds' texts joined (with ``"turns"``, a space where a round would otherwise glue
two words together). Every round and what it took in is recorded in
``response_metadata["moa"]["staircase"]``.
"""

from langchain_moa.staircase.rounds import (
    CONTINUE_PROMPT,
    FINISH_PROMPT,
    GO_ON,
    aggregate_in_rounds,
    aggregate_while_streaming,
    joined,
    prefills,
    replay,
)
from langchain_moa.staircase.streams import Staircase, Staircases

__all__ = [
    "CONTINUE_PROMPT",
    "FINISH_PROMPT",
    "GO_ON",
    "Staircase",
    "Staircases",
    "aggregate_in_rounds",
    "aggregate_while_streaming",
    "joined",
    "prefills",
    "replay",
]
