"""MATH-500: 500 competition problems, the PRM800K test split of MATH (Lightman et al. 2023).

Source: `<data_dir>/math500/test.jsonl` (fields `problem`, `solution`, `answer`, `subject`,
`level`, `unique_id`; the gold answer is the LaTeX string in `answer`), or the hub dataset
`HuggingFaceH4/MATH-500` (split `test`) when no local copy exists. Item ids are
`math500/<split>/<line index>`.

Prompt: the problem, then a request to reason step by step and put the final answer in
`\\boxed{}`.
Extraction (`extract_answer`, a pure function of the text; tuned on real outputs of our CPU
models, tests/data/extraction/math500.jsonl; the first rule that finds an answer wins):
  1. `\\boxed{...}` (and `\\fbox`), nested braces balanced, empty boxes ignored: the last group of
     adjacent boxes, where boxes are adjacent when only connectors stand between them ("and",
     "or", ",", "$", "x =", `\\quad`): "x = \\boxed{2} or x = \\boxed{3}" is the set "2, 3", while
     "\\boxed{2} ... wait, it is \\boxed{5}" is "5" (a self-correction).
  2. "final answer is X" / "Answer: X" (X runs to the end of the line, or is the first `$...$`
     after the phrase; a trailing period and surrounding `$` are dropped); the last one wins. A
     bare label ("Answer:\n\nExplanation:", as degenerate base-model outputs repeat) is none.
  3. A concluding sentence ("So / Thus / Therefore / Hence ..." or "... answer is ..."), the
     last one with math in it: what math-verify's own extraction (`LatexExtractionConfig`,
     `ExprExtractionConfig`) finds there, so "$x = 2$ or $x = 3$" is read as a set,
and None otherwise (there is no "last number anywhere" fallback: MATH answers are often not
numbers, and a number in the working is not an answer).
Scoring wraps both sides in `$...$` and compares them with `math-verify`, so `\\frac{14}{3}`,
`\\dfrac{14}{3}` and `14/3` match, as do `10\\%` and `10`, `(3, \\frac{\\pi}{2})` and
`\\left( 3, \\frac{\\pi}{2} \\right)`, or `x = 2 \\text{ or } x = -3` and a gold `-3, 2`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

from harness.benchmarks.base import Benchmark, Item, boxed_spans

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

_STATED = re.compile(r"(?:final\s+answer\s+is|answer\s*:)[\s*:]*", re.IGNORECASE)
_LABEL = re.compile(r"[A-Za-z][A-Za-z ]*:")
_INLINE_MATH = re.compile(r"\$+([^$]+)\$+")
# What may stand between two boxes of one answer: "$\boxed{2}$ or $x = \boxed{3}$".
_BETWEEN = re.compile(
    r"(?:\s|\$|\\[()\[\]]|[,;]|\band\b|\bor\b|\\(?:quad|qquad|text\s*\{\s*(?:and|or|,)?\s*\})"
    r"|[A-Za-z]\s*=)*",
)
_CONCLUSION = re.compile(
    r"^(?:so|thus|therefore|hence|finally|in\s+conclusion)\b|\bthe\s+(?:final\s+)?answer\s+is\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])|\n+")


def _clean(stated: str) -> str | None:
    """The answer in the text after "final answer is" / "Answer:", or None when empty."""
    stated = stated.strip()
    if stated.startswith("$") and (m := _INLINE_MATH.match(stated)):
        stated = m.group(1)
    stated = stated.strip().strip("*").strip()
    stated = re.sub(r"[.\s]+$", "", stated).strip("$").strip()
    if _LABEL.fullmatch(stated):
        return None
    return stated or None


def _last_box_group(text: str) -> str | None:
    """The last group of adjacent boxes (rule 1), several joined as a set "a, b"."""
    boxes = [box for box in boxed_spans(text) if box[2]]
    if not boxes:
        return None
    group = [boxes[-1]]
    for box in reversed(boxes[:-1]):
        if not _BETWEEN.fullmatch(text[box[1] : group[0][0]]):
            break
        group.insert(0, box)
    return ", ".join(content for _, _, content in group)


def _concluded(text: str) -> str | None:
    """What math-verify extracts from the last concluding sentence with math (rule 3)."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    targets = [LatexExtractionConfig(boxed_match_priority=-1), ExprExtractionConfig()]
    for sentence in reversed(_SENTENCE_END.split(text)):
        if not _CONCLUSION.search(sentence.strip()):
            continue
        found = parse(sentence, targets)
        if len(found) == 2 and isinstance(found[1], str) and found[1].strip():
            return found[1].replace(" and ", ", ").strip()
    return None


def extract_answer(text: str) -> str | None:
    """The final answer of a MATH response (rules in the module docstring), or None."""
    if (boxed := _last_box_group(text)) is not None:
        return boxed
    for m in reversed(list(_STATED.finditer(text))):
        if (answer := _clean(text[m.end() :].split("\n", 1)[0])) is not None:
            return answer
    return _concluded(text)


def _as_math(expr: str) -> str:
    expr = expr.strip()
    return expr if expr.startswith("$") else f"${expr}$"


@functools.lru_cache(maxsize=1 << 16)  # pure; a study grades the same answers many times
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
