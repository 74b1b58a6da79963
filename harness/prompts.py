"""The aggregator prompt, in one place.

Structure (MoA's aggregate-and-synthesize prompt, as described in the paper; wording is ours):
an instruction to synthesise the candidate responses critically into one answer, then a
numbered list of the responses, all in the system message (appended to an existing system
message), followed by the original conversation unchanged, so the aggregator answers the
user's last turn itself.
"""

from __future__ import annotations

Message = dict[str, str]

AGGREGATOR_INSTRUCTION = (
    "Below are several candidate responses to the user's most recent message, written "
    "independently by AI assistants. Combine them into one response of the highest quality. "
    "Read them critically: any of them may contain mistakes, unsupported claims or bias, so "
    "check the reasoning instead of trusting a response because others agree with it. Do not "
    "simply copy one of them. Your response must be accurate, complete, well organised and "
    "coherent, and must follow the user's instructions, including any required answer format."
)
RESPONSES_HEADER = "Candidate responses:"


def numbered(responses: list[str]) -> str:
    """`1. first`, `2. second`, ... in the given order, separated by blank lines."""
    return "\n\n".join(f"{i}. {text.strip()}" for i, text in enumerate(responses, start=1))


def aggregator_system(responses: list[str]) -> str:
    if not responses:
        raise ValueError("aggregation needs at least one response")
    return f"{AGGREGATOR_INSTRUCTION}\n\n{RESPONSES_HEADER}\n\n{numbered(responses)}"


def aggregation_messages(conversation: list[Message], responses: list[str]) -> list[Message]:
    """The aggregator's conversation: the original one with the responses in its system message.

    An existing system message keeps its text first and gets the aggregator block appended;
    otherwise a system message is put in front. The input list is not modified.
    """
    block = aggregator_system(responses)
    if conversation and conversation[0]["role"] == "system":
        merged = {"role": "system", "content": f"{conversation[0]['content']}\n\n{block}"}
        return [merged, *conversation[1:]]
    return [{"role": "system", "content": block}, *conversation]
