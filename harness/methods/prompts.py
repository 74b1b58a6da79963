"""The aggregator prompts, in one place (`method.prompt` chooses one of AGGREGATOR_PROMPTS).

Structure of both (MoA's aggregate-and-synthesise prompt, as the paper describes it; the
wording is ours): an instruction to synthesise the responses into one answer, a header, then a
numbered list of the responses, all in the system message (appended to an existing system
message), followed by the original conversation unchanged, so the aggregator answers the
user's last turn itself.
    moa       MoA's instruction and nothing more: synthesise, weigh critically (some responses
              may be wrong or biased), do not just copy, be accurate and coherent.
    critical  the harness's first prompt (kept byte for byte: stored aggregations stay valid):
              adds "do not trust a response because others agree with it" and "keep the
              required answer format", which may suppress the consensus Self-MoA relies on.
"""

from __future__ import annotations

import re

Message = dict[str, str]

MOA_INSTRUCTION = (
    "You are shown several responses that different AI assistants wrote to the user's latest "
    "message. Synthesise them into one response of high quality. Weigh the information in them "
    "critically, as some of it may be wrong or biased. Do not merely repeat one of them: give a "
    "refined, accurate and complete reply to the user's message, well organised and coherent."
)
MOA_HEADER = "Responses from the assistants:"
CRITICAL_INSTRUCTION = (
    "Below are several candidate responses to the user's most recent message, written "
    "independently by AI assistants. Combine them into one response of the highest quality. "
    "Read them critically: any of them may contain mistakes, unsupported claims or bias, so "
    "check the reasoning instead of trusting a response because others agree with it. Do not "
    "simply copy one of them. Your response must be accurate, complete, well organised and "
    "coherent, and must follow the user's instructions, including any required answer format."
)
RESPONSES_HEADER = "Candidate responses:"
# name -> (instruction, header of the numbered responses)
AGGREGATOR_PROMPTS = {
    "moa": (MOA_INSTRUCTION, MOA_HEADER),
    "critical": (CRITICAL_INSTRUCTION, RESPONSES_HEADER),
}
DEFAULT_PROMPT = "moa"


def numbered(responses: list[str]) -> str:
    """`1. first`, `2. second`, ... in the given order, separated by blank lines."""
    return "\n\n".join(f"{i}. {text.strip()}" for i, text in enumerate(responses, start=1))


def aggregator_system(responses: list[str], prompt: str = DEFAULT_PROMPT) -> str:
    if not responses:
        raise ValueError("aggregation needs at least one response")
    instruction, header = AGGREGATOR_PROMPTS[prompt]
    return f"{instruction}\n\n{header}\n\n{numbered(responses)}"


def aggregation_messages(
    conversation: list[Message], responses: list[str], prompt: str = DEFAULT_PROMPT
) -> list[Message]:
    """The aggregator's conversation: the original one with the responses in its system message.

    `prompt` names one of AGGREGATOR_PROMPTS. An existing system message keeps its text first
    and gets the aggregator block appended; otherwise a system message is put in front. The
    input list is not modified.
    """
    return with_system(conversation, aggregator_system(responses, prompt))


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
