"""MATH-500: 500 competition problems, the PRM800K test split of MATH (Lightman et al. 2023).

Source: `<data_dir>/math500/test.jsonl` (fields `problem`, `solution`, `answer`, `subject`,
`level`, `unique_id`; the gold answer is the LaTeX string in `answer`), or the hub dataset
`HuggingFaceH4/MATH-500` (split `test`) when no local copy exists. Item ids are
`math500/<split>/<line index>`.

Prompt: the problem, then a request to reason step by step and put the final answer in
`\\boxed{}`.
Extraction (`extract_answer`, first rule that matches wins, the last match within a rule):
  1. the content of the last non-empty `\\boxed{...}` (nested braces balanced),
  2. "final answer is X" / "Answer: X" (X runs to the end of the line, or is the first `$...$`
     after the phrase; a trailing period and surrounding `$` are dropped),
and None otherwise (there is no "last number" fallback: MATH answers are often not numbers).
Scoring wraps both sides in `$...$` and compares them with `math-verify`, so `\\frac{14}{3}`,
`\\dfrac{14}{3}` and `14/3` match, as do `10\\%` and `10`, or `(3, \\frac{\\pi}{2})` and
`\\left( 3, \\frac{\\pi}{2} \\right)`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from harness.benchmarks.base import Benchmark, Item, boxed_contents

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

_STATED = re.compile(r"(?:final\s+answer\s+is|answer\s*:)[\s*:]*", re.IGNORECASE)
_INLINE_MATH = re.compile(r"\$+([^$]+)\$+")


def _clean(stated: str) -> str | None:
    """The answer in the text after "final answer is" / "Answer:", or None when empty."""
    stated = stated.strip()
    if stated.startswith("$") and (m := _INLINE_MATH.match(stated)):
        stated = m.group(1)
    stated = stated.strip().strip("*").strip()
    stated = re.sub(r"[.\s]+$", "", stated).strip("$").strip()
    return stated or None


def extract_answer(text: str) -> str | None:
    """The final answer of a MATH response (rules in the module docstring), or None."""
    if boxed := [b for b in boxed_contents(text) if b]:
        return boxed[-1]
    for m in reversed(list(_STATED.finditer(text))):
        if (answer := _clean(text[m.end() :].split("\n", 1)[0])) is not None:
            return answer
    return None


def _as_math(expr: str) -> str:
    expr = expr.strip()
    return expr if expr.startswith("$") else f"${expr}$"


def is_equivalent(reference: str, answer: str | None) -> bool:
    if answer is None or not answer.strip():
        return False
    from math_verify import parse, verify

    gold = parse(_as_math(reference))
    pred = parse(_as_math(answer))
    return bool(gold and pred and verify(gold, pred))


class MATH500(Benchmark):
    name = "math500"
    label = "MATH-500"

    def read(self) -> Iterator[Item]:
        for where, index, record in self.jsonl_rows(f"math500/{self.cfg.split}.jsonl"):
            if (fields := self.texts(where, record, "problem", "answer")) is None:
                continue
            problem, answer = fields
            yield Item(
                id=f"math500/{self.cfg.split}/{index}", question=problem, reference=answer.strip()
            )

    def messages(self, item: Item) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"{item.question}\n\n{INSTRUCTION}"}]

    def extract_answer(self, text: str) -> str | None:
        return extract_answer(text)

    def score(self, item: Item, answer: str | None) -> float:
        return float(is_equivalent(item.reference, answer))
