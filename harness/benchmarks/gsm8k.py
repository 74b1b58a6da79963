"""GSM8K: grade-school math word problems with integer answers (Cobbe et al. 2021).

Source: `<data_dir>/gsm8k/test.jsonl` (fields `question`, `answer`; the gold number follows the
last `####`), or the hub dataset `openai/gsm8k` when no local copy exists.

Prompt: the question, then a request to reason step by step and finish with `#### <number>`.
Extraction (`extract_answer`, first rule that matches wins, the last match within a rule):
  1. a `#### <number>` line (the format we ask for),
  2. `\\boxed{...}` (what math-tuned models write anyway),
  3. "answer is <number>" / "Answer: <number>",
  4. otherwise the last number in the response (the usual "flexible" fallback),
and None when the response has no number at all. Scoring compares with `math-verify`, so
`18`, `18.0`, `$18` and `\\frac{36}{2}` all match a gold `18`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from harness.benchmarks.base import Benchmark, Item, boxed_contents

INSTRUCTION = (
    "Solve the problem step by step. On the last line, write the final answer as a number "
    "in the form '#### <number>'."
)

_NUMBER = r"-?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?"
_MARKER = re.compile(r"####\s*(" + _NUMBER + ")")
_ANSWER_IS = re.compile(
    r"(?:answer\s*(?:is|:)|answer\s+is\s*:)\s*\**\s*(" + _NUMBER + ")", re.IGNORECASE
)
_ANY_NUMBER = re.compile(_NUMBER)


def normalize_number(raw: str) -> str:
    """`$1,234.50` -> `1234.50`; `- 5` -> `-5`; trailing `.0` kept (math-verify equates it)."""
    return re.sub(r"[\s$,]", "", raw)


def extract_answer(text: str) -> str | None:
    """The final answer of a GSM8K response (rules in the module docstring), or None."""
    if markers := _MARKER.findall(text):
        return normalize_number(markers[-1])
    if boxed := [b for b in boxed_contents(text) if b]:
        last = boxed[-1]
        numbers = _ANY_NUMBER.findall(last)
        return normalize_number(numbers[-1]) if len(numbers) == 1 and "\\" not in last else last
    if stated := _ANSWER_IS.findall(text):
        return normalize_number(stated[-1])
    if numbers := _ANY_NUMBER.findall(text):
        return normalize_number(numbers[-1])
    return None


def reference_answer(solution: str) -> str | None:
    """The gold number of a GSM8K solution: what follows its last `####`."""
    if "####" not in solution:
        return None
    value = normalize_number(solution.rsplit("####", 1)[1].strip())
    return value if re.fullmatch(r"-?\d+(?:\.\d+)?", value) else None


def is_equivalent(reference: str, answer: str | None) -> bool:
    if answer is None:
        return False
    from math_verify import parse, verify

    return bool(verify(parse(reference), parse(answer)))


class GSM8K(Benchmark):
    name = "gsm8k"
    label = "GSM8K"

    def read(self) -> Iterator[Item]:
        for where, index, record in self.jsonl_rows(f"gsm8k/{self.cfg.split}.jsonl"):
            if (fields := self.texts(where, record, "question")) is None:
                continue
            question, solution = fields[0], record.get("answer")
            if not isinstance(solution, str) or (gold := reference_answer(solution)) is None:
                self.report.skipped.append(f"{where}: 'answer' has no '#### <number>' line")
                continue
            yield Item(id=f"gsm8k/{self.cfg.split}/{index}", question=question, reference=gold)

    def messages(self, item: Item) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"{item.question}\n\n{INSTRUCTION}"}]

    def extract_answer(self, text: str) -> str | None:
        return extract_answer(text)

    def score(self, item: Item, answer: str | None) -> float:
        return float(is_equivalent(item.reference, answer))
