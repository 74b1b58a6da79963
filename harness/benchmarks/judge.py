"""Judge prompts and their parsers (our wording); the agreement check is harness.agreement.

Two judging modes, both answered by a local model through the same engine and store:
  pairwise (AlpacaEval)  the judge sees an instruction and two outputs and names the better one
                         by number; callers ask both orders to cancel position bias
  single (MT-Bench)      the judge rates one answer from 1 to 10, seeing a reference answer when
                         the benchmark gives one (math, reasoning, coding), and for a later turn
                         the whole dialogue before it
"""

from __future__ import annotations

import re

Message = dict[str, str]

JUDGE_SYSTEM = (
    "You are an impartial, careful judge of AI assistant responses. You judge helpfulness, "
    "accuracy, relevance, depth and clarity, and you are not swayed by the length of a "
    "response or by its position."
)

PAIRWISE_REQUEST = (
    "Which output answers the instruction better? Reply with the number of the better "
    "output only: 1 or 2."
)


def pairwise_messages(instruction: str, first: str, second: str) -> list[Message]:
    """Ask which of two outputs answers `instruction` better (reply: '1' or '2')."""
    content = (
        f"Instruction:\n{instruction.strip()}\n\n"
        f"Output (1):\n{first.strip()}\n\n"
        f"Output (2):\n{second.strip()}\n\n"
        f"{PAIRWISE_REQUEST}"
    )
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": content}]


def pairwise_verdict(replies: list[str | None]) -> tuple[float | None, list[int | None]]:
    """The response's win share from the (response first, reference first) judge replies."""
    choices = [parse_pairwise(r) if r is not None else None for r in replies]
    ours = (1, 2)  # the response's position in each order
    wins = [float(c == o) for c, o in zip(choices, ours, strict=True) if c is not None]
    return (sum(wins) / len(wins) if wins else None), choices


_LEADING_CHOICE = re.compile(r"^[\s*#>\"'`(\[]*(?:output\s*)?\(?([12])\)?(?!\.?\d)", re.I)
_STATED_CHOICE = re.compile(
    r"(?:output|response|answer)\s*\(?([12])\)?\s*(?:is|was)\s*(?:the\s*)?better", re.I
)
_LONE_CHOICE = re.compile(r"(?<![\d.])([12])(?!\.?\d)")


def parse_pairwise(text: str) -> int | None:
    """1 or 2: the output a pairwise judgement prefers, or None when it cannot be told.

    Rules, first match wins: the reply starts with the number (optionally 'Output (n)');
    it states 'Output n is better'; exactly one of 1 and 2 occurs in it as a lone number.
    """
    if m := _LEADING_CHOICE.match(text):
        return int(m[1])
    stated = {int(x) for x in _STATED_CHOICE.findall(text)}
    if len(stated) == 1:
        return stated.pop()
    lone = {int(x) for x in _LONE_CHOICE.findall(text)}
    return lone.pop() if len(lone) == 1 else None


RATING_REQUEST = (
    "Rate the assistant's answer{which} on a scale of 1 (useless or wrong) to 10 (excellent). "
    "{reference_rule}Reply first with the rating in the form [[N]], then justify it in at most "
    "two sentences."
)
REFERENCE_RULE = (
    "A reference answer is given: an answer whose result disagrees with the reference is wrong "
    "and must get a low rating. "
)


def rating_messages(dialogue: list[Message], answer: str, reference: str = "") -> list[Message]:
    """Ask for a 1-10 rating of `answer` to the last user turn of `dialogue`.

    Earlier turns of `dialogue` (user and assistant) are shown as context.
    """
    *history, question = dialogue
    parts = []
    turn = 0
    for message in history:
        if message["role"] == "user":
            turn += 1
            parts.append(f"[User, turn {turn}]\n{message['content'].strip()}")
        elif message["role"] == "assistant":
            parts.append(f"[Assistant, turn {turn}]\n{message['content'].strip()}")
    last = turn + 1
    parts.append(f"[User, turn {last}]\n{question['content'].strip()}")
    if reference.strip():
        parts.append(f"[Reference answer to turn {last}]\n{reference.strip()}")
    parts.append(f"[Assistant, turn {last}: the answer to rate]\n{answer.strip()}")
    request = RATING_REQUEST.format(
        which=f" to turn {last}" if last > 1 else "",
        reference_rule=REFERENCE_RULE if reference.strip() else "",
    )
    content = "\n\n".join(parts) + f"\n\n{request}"
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": content}]


_BRACKETED = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")
_LABELLED = re.compile(r"(?:rating|score)\s*(?:is|of|:)?\s*\[?\s*(\d+(?:\.\d+)?)", re.I)
_OUT_OF_TEN = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(?:/|out of)\s*10\b", re.I)
_LEADING_NUMBER = re.compile(r"^[\s*#>\"'`\[]*(\d+(?:\.\d+)?)(?![\d])")


def parse_rating(text: str) -> float | None:
    """The 1-10 rating of a single-answer judgement, or None.

    Rules, first match wins (the first rating within a rule): '[[N]]'; 'Rating: N' or
    'score of N'; 'N/10' or 'N out of 10'; a number at the very start. A value outside 1..10 is
    not a rating (None).
    """
    for pattern in (_BRACKETED, _LABELLED, _OUT_OF_TEN):
        if m := pattern.search(text):
            value = float(m[1])
            return value if 1 <= value <= 10 else None
    if m := _LEADING_NUMBER.match(text):
        value = float(m[1])
        return value if 1 <= value <= 10 else None
    return None
