"""The aggregator prompt, in one place.

Structure (MoA's aggregate-and-synthesize prompt, as described in the paper; wording is ours):
an instruction to synthesise the candidate responses critically into one answer, then a
numbered list of the responses, all in the system message (appended to an existing system
message), followed by the original conversation unchanged, so the aggregator answers the
user's last turn itself.
"""

from __future__ import annotations

import re

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
    return with_system(conversation, aggregator_system(responses))


def with_system(conversation: list[Message], block: str) -> list[Message]:
    """`block` appended to the conversation's system message, or as a new first message."""
    if conversation and conversation[0]["role"] == "system":
        merged = {"role": "system", "content": f"{conversation[0]['content']}\n\n{block}"}
        return [merged, *conversation[1:]]
    return [{"role": "system", "content": block}, *conversation]


USC_INSTRUCTION = (
    "Evaluate these responses and select the one that is most consistent with the others, "
    "that is, whose final answer the majority of the responses reach. Do not solve the question "
    "again and do not write a new answer. Start your reply with 'The most consistent response "
    "is Response N', where N is the number of the response you select."
)
_USC_CHOICE = re.compile(r"most consistent response is\s*(?:response\s*)?#?\s*(\d+)", re.I)
_ANY_RESPONSE = re.compile(r"response\s*#?\s*(\d+)", re.I)


def usc_messages(conversation: list[Message], responses: list[str]) -> list[Message]:
    """Universal self-consistency: the last user turn becomes the question, the numbered
    responses and the request to name one (all in the user turn, where small models follow it:
    in a system message Qwen2.5-0.5B ignored it and answered the question instead)."""
    if not responses:
        raise ValueError("selection needs at least one response")
    *history, last = conversation
    content = (
        f"Question:\n{last['content']}\n\n{RESPONSES_HEADER}\n\n{numbered(responses)}"
        f"\n\n{USC_INSTRUCTION}"
    )
    return [*history, {"role": "user", "content": content}]


def parse_usc_choice(text: str, n: int) -> int | None:
    """The 1-based response number a USC selection names, or None if absent or out of range.

    The requested sentence wins; otherwise a lone 'Response N' mention is accepted; several
    different mentions are ambiguous (None).
    """
    if m := _USC_CHOICE.search(text):
        choice = int(m[1])
    else:
        mentioned = {int(x) for x in _ANY_RESPONSE.findall(text)}
        if len(mentioned) != 1:
            return None
        choice = mentioned.pop()
    return choice if 1 <= choice <= n else None
