"""GSM8K: grade-school math word problems with integer answers (Cobbe et al. 2021).

Source: `<data_dir>/gsm8k/test.jsonl` (fields `question`, `answer`; the gold number follows the
last `####`), or the hub dataset `openai/gsm8k` when no local copy exists.

Prompt: the question, then a request to reason step by step and finish with `#### <number>`.

Extraction (`extract_answer`, a pure function of the text; tuned on real outputs of our CPU
models, tests/data/extraction/gsm8k.jsonl). Numbers are read with thousands separators (`1,234`,
`1 234`, `1\\,234`, `1{,}234`), a currency sign or unit around them, full-width digits, and as
words ("eighteen", "twenty-five", "one hundred and five", "3 million"). The first rule that
finds a number wins, the last match within a rule:
  1. a `#### <number>` line (the format we ask for),
  2. the last non-empty `\\boxed{...}`: its number when it holds one (`\\$18`,
     `18 \\text{ dollars}`, `1,080`), else its LaTeX for math-verify (`\\frac{1}{2}`),
  3. a stated answer: "answer is <number>", "Answer: ... <number>" (on the same line; after
     "answer is 16 + 2 = 18", the result 18),
  4. the conclusion: the text before a verification section ("Check:", "Let's verify", ...)
     is kept when it has a number; in its last sentence with a number, the number after "total
     is" / "total of" / "altogether" / "in total", else the number after the last "=", else
     the sentence's last number outside parentheses; a response that stops mid-sentence (cut
     off at max_tokens: it ends in a word, a comma or an operator, and not in a quantity such
     as "540 meters") has no conclusion,
and None when no rule finds a number, or when the last boxes are alternatives that disagree
("\\boxed{12} or maybe \\boxed{14}": a hedge; only connectors and hedging words between them,
while a box withdrawn by reasoning in between is a self-correction, rule 2). A fraction
("7/2") is read as one value in rules 1, 3 and 4, so it matches a decimal gold (3.5). Scoring
compares with `math-verify`, so `18`, `18.0`, `$18` and `\\frac{36}{2}` all match a gold `18`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from harness.benchmarks.base import Benchmark, Item, boxed_contents, boxed_spans

INSTRUCTION = (
    "Solve the problem step by step. On the last line, write the final answer as a number "
    "in the form '#### <number>'."
)

_UNITS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen".split()
    )
}
_TENS = {
    w: 10 * i
    for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)
}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9}
_WORD = r"(?:" + "|".join(sorted([*_UNITS, *_TENS, *_SCALES], key=len, reverse=True)) + r")"
_WORD_NUMBER = re.compile(
    rf"(?<![\w-])(?:\d+(?:\.\d+)?[ \t]+(?:{'|'.join(_SCALES)})\b"
    rf"|{_WORD}(?:(?:[ \t]+and[ \t]+|[ \t]*-[ \t]*|[ \t]+){_WORD})*)(?![\w-])",
    re.IGNORECASE,
)
# "one" alone is usually a pronoun or an article ("each one", "one of them").
_NOT_A_NUMBER = re.compile(
    r"(?i:(?:the|each|every|any|no|this|that|which|some|another|a)[ \t]+one\b"
    r"|\bone[ \t]+(?:of|another|by|more|at))"
)
_NUMBER = r"-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d{1,3}(?: \d{3})+(?![\d.,]\d)|\d+)(?:\.\d+)?"
# a fraction "7/2" is one value (the gold may be the decimal 3.5; math-verify equates them)
_VALUE = _NUMBER + r"(?:[ \t]*/[ \t]*\d+(?![\d,]))?"
_MARKER = re.compile(r"####[ \t]*\$?[ \t]*(" + _VALUE + ")")
_ANSWER_IS = re.compile(r"\banswer(?:[ \t]+is|[ \t]*[:=])([^\n]*)", re.IGNORECASE)
_ANY_NUMBER = re.compile(r"(?<![\d.])" + _NUMBER)
_ANY_VALUE = re.compile(r"(?<![\d./])" + _VALUE)
# what may stand between two boxes offered as alternatives: "\boxed{12} or maybe \boxed{14}"
_HEDGE_BETWEEN = re.compile(
    r"(?:\s|\$|[.,;:!?()]|\b(?:or|and|maybe|perhaps|possibly|either|it|could|might|would|be|is)\b)*",
    re.IGNORECASE,
)
_VERIFICATION = re.compile(
    r"^[^\w\n]*(?:let(?:'|’)?s[ \t]+|let[ \t]+me[ \t]+|we[ \t]+can[ \t]+|to[ \t]+)?"
    r"(?:check|verify|verification|double[- ]check|sanity[ \t]+check)\b",
    re.IGNORECASE | re.MULTILINE,
)
_TOTAL = re.compile(
    r"(?:\btotal(?:[ \t]+\w+){0,4}?[ \t]+(?:is|was|of|will[ \t]+be|comes[ \t]+to)"
    r"|\b(?:altogether|in[ \t]+total|in[ \t]+all|combined)(?:[ \t,]+\w+){0,4}?)[ \t:,]*\$?[ \t]*("
    + _NUMBER
    + ")",
    re.IGNORECASE,
)
# A response cut off mid-sentence (at max_tokens) has not concluded: its last number is working.
_UNFINISHED = re.compile(r"(?:[A-Za-z]{2,}|[,;:(\[{=+*/-])\s*\Z")
_ENDS_WITH_QUANTITY = re.compile(r"\d[ \t]*(?:[A-Za-z]+[ \t]*){0,3}\s*\Z")  # "... 3 400 km"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def _word_value(phrase: str) -> int | None:
    """ "one hundred and twenty-five" -> 125, "3 million" -> 3000000; None when not a number."""
    total, current = 0, 0
    for token in re.split(r"[\s-]+", phrase.lower()):
        if token == "and" or not token:
            continue
        if token in _UNITS:
            current += _UNITS[token]
        elif token in _TENS:
            current += _TENS[token]
        elif token in _SCALES:
            scale = _SCALES[token]
            if scale == 100:
                current = max(current, 1) * 100
            else:
                total += max(current, 1) * scale
                current = 0
        else:
            try:
                current += float(token) if "." in token else int(token)
            except ValueError:
                return None
    value = total + current
    return int(value) if value == int(value) else value


def _digits_for_words(text: str) -> str:
    """Number words replaced by digits, except "one" where it is a pronoun."""

    def replace(m: re.Match) -> str:
        phrase = m.group(0)
        if phrase.lower() == "one" and _NOT_A_NUMBER.search(
            text[max(0, m.start() - 8) : m.end() + 9]
        ):
            return phrase
        value = _word_value(phrase)
        return phrase if value is None else str(value)

    return _WORD_NUMBER.sub(replace, text)


def _normalise(text: str) -> str:
    """Full-width digits and odd spaces folded; LaTeX separators, `\\$` and markdown dropped."""
    text = "".join(chr(ord(c) - 0xFEE0) if "\uff01" <= c <= "\uff5e" else c for c in text)
    text = re.sub(r"[\u00a0\u2007\u2009\u202f]", " ", text)
    text = re.sub(
        r"(?<=\d)(?:\{,\}|\\,|\\ |\\!|~)(?=\d{3}(?!\d))",
        lambda m: "," if "," in m.group(0) else " ",
        text,
    )
    text = text.replace("\\$", "$").replace("**", "")
    return _digits_for_words(text)


def normalize_number(raw: str) -> str:
    """`$1,234.50` -> `1234.50`; `1 234` -> `1234`; trailing `.0` kept (math-verify equates it)."""
    return re.sub(r"[\s$,]", "", raw)


def _boxed_answer(content: str) -> str:
    """The number in a box's content when it holds one, else the content (LaTeX)."""
    cleaned = re.sub(r"\\(?:text|mathrm|textbf|mbox)\s*\{([^{}]*)\}", r" \1 ", content)
    cleaned = _normalise(cleaned.replace("\\%", "%"))
    numbers = _ANY_NUMBER.findall(cleaned)
    if len(numbers) == 1 and not re.search(r"\\(?:frac|dfrac|sqrt)|[/^]", cleaned):
        return normalize_number(numbers[0])
    return content


def _stated(rest: str) -> str | None:
    """The number stated after "answer is": the result of "16 + 2 = 18", else the first number."""
    if "=" in rest and (after := _ANY_VALUE.findall(rest.rsplit("=", 1)[1])):
        return normalize_number(after[0])
    if m := re.match(r"[^\d-]{0,40}?(" + _VALUE + ")", rest):
        return normalize_number(m.group(1))
    return None


def _conclusion(text: str) -> str | None:
    """The number a response concludes with (rule 4 in the module docstring)."""
    if _UNFINISHED.search(text) and not _ENDS_WITH_QUANTITY.search(text):
        return None
    for m in _VERIFICATION.finditer(text):
        if _ANY_NUMBER.search(text[: m.start()]):
            text = text[: m.start()]
            break
    sentences = [s for s in _SENTENCE_END.split(text) if _ANY_NUMBER.search(s)]
    if not sentences:
        return None
    last = sentences[-1]
    if total := _TOTAL.findall(last):
        return normalize_number(total[-1])
    if "=" in last and (after := _ANY_VALUE.findall(last.rsplit("=", 1)[1])):
        return normalize_number(after[0])
    outside = re.sub(r"\([^()]*\)", " ", last)
    numbers = _ANY_VALUE.findall(outside) or _ANY_VALUE.findall(last)
    return normalize_number(numbers[-1])


def _hedged(text: str) -> bool:
    """The last boxes are alternatives that disagree ("\boxed{12} or maybe \boxed{14}"): a
    hedge, no answer. A box withdrawn by reasoning in between is a self-correction instead."""
    boxes = [b for b in boxed_spans(text) if b[2]]
    if len(boxes) < 2:
        return False
    group = [boxes[-1]]
    for box in reversed(boxes[:-1]):
        if not _HEDGE_BETWEEN.fullmatch(text[box[1] : group[0][0]]):
            break
        group.insert(0, box)
    return len({_boxed_answer(b[2]) for b in group}) > 1


def extract_answer(text: str) -> str | None:
    """The final answer of a GSM8K response (rules in the module docstring), or None."""
    if _hedged(text):
        return None
    if boxed := [b for b in boxed_contents(text) if b]:
        boxed_answer = _boxed_answer(boxed[-1])
    text = _normalise(text)
    if markers := _MARKER.findall(text):
        return normalize_number(markers[-1])
    if boxed:
        return boxed_answer
    for rest in reversed(_ANSWER_IS.findall(text)):
        if answer := _stated(rest):
            return answer
    return _conclusion(text)


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
