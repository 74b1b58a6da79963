"""CRUXEval output prediction: given a short Python function `f` and an input, predict `f(input)`
(Gu et al. 2024, 800 functions).

Source: `<data_dir>/cruxeval/cruxeval.jsonl` (fields `code`, `input`, `output`, `id`; `input` is
the argument list as Python source, `output` the return value's repr), or the hub dataset
`cruxeval-org/cruxeval` (split `test`) when no local copy exists. Item ids are
`cruxeval/<split>/<line index>`. A record whose code has no `def f`, or whose input or output
is not valid Python, is skipped and counted with its file and line.

Prompt: the function in a ```python fence and the call, then a request to give the return
value as a Python literal between `[ANSWER]` and `[/ANSWER]`.
Extraction (`extract_answer`, pure; first rule that matches wins, the last candidate within a
rule; a candidate must parse as one Python expression, else it is passed over):
  1. the content of `[ANSWER] ... [/ANSWER]` (an unclosed last tag runs to the end); code
     fences inside are dropped, and `assert f(...) == X` or `f(...) == X` gives X,
  2. `assert f(...) == X` anywhere (also `X == f(...)`),
  3. a ```python fence holding exactly one expression,
  4. "output is X" / "returns X" / "Output: X" (X to the end of the line, backticks and a
     trailing period dropped),
  5. the whole response, when it is one Python expression (a bare `[1, 2]`),
and None otherwise.
Scoring (verdicts the prediction cannot forge; harness.sandbox explains the parts):
  1. expected: `f(<input>)` is computed in the sandbox (the dataset's function alone, no
     prediction in that process) and comes back as literal text, parsed here by
     `sandbox.literal`; once per (code, input). The dataset's `output` is not used.
  2. predicted: the answer parsed here by `sandbox.literal` (an AST walk: no code runs). Only an
     answer that is no literal (`'abc'[::-1]`, `sorted([2, 1])`) is evaluated, in a sandbox run
     of its own, in an empty namespace (so `f(...)` cannot restate the question), and its value
     comes back the same way. That process never holds the expected value: it is in this
     process only, which the sandbox cannot see.
  3. verdict: `sandbox.same(predicted, expected)` here, on built-in values only (== with nan
     equal to nan; [1] and (1,) differ as in Python), so no `__eq__` of the model's can lie.
A score is 1.0 or 0.0. `score_outcomes` (metrics.json) counts per graded answer: `ok` (right),
`error` (wrong, an exception, or a malformed value message), and apart from those `timeout`,
`memory`, `cpu_limit` and `crash` of whichever run failed (logged too). Identical (code, input,
answer) triples are graded once per run. `benchmark.sandbox` picks the sandbox mode
(`contained`, or `trusted` to grade without namespaces); call `harness.sandbox.check(mode)`
before models load.
"""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

from harness import sandbox
from harness.benchmarks.base import Benchmark, Item, Knobs
from harness.errors import ConfigError

log = logging.getLogger(__name__)

# No example values in the request: the 0.5B models copied an example ("[1, 2]") as their answer.
INSTRUCTION = (
    "What does `f({input})` return? Think it through step by step if you need to. Then give "
    "the return value as a Python literal between [ANSWER] and [/ANSWER]. Write only the value "
    "there, not the call."
)

_TAGGED = re.compile(r"\[ANSWER\](.*?)(?:\[/ANSWER\]|\Z)", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n?(.*?)```", re.DOTALL | re.IGNORECASE)
_ASSERT = re.compile(r"assert\s+(.+)$", re.MULTILINE)
_STATED = re.compile(
    r"(?:output\s+(?:is|will\s+be|would\s+be)|returns|return\s+value\s+is|output\s*:)\s*(.+)$",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(frozen=True)
class CruxItem(Item):
    code: str = ""  # the function `f`
    input: str = ""  # the arguments of the call, as Python source


def _expression(text: str) -> ast.Expression | None:
    try:
        return ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError):
        return None


def _is_call_of_f(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "f"


def _value(text: str) -> str | None:
    """`X` from `X`, `f(...) == X`, `X == f(...)` or `assert f(...) == X`; None if not Python."""
    text = text.strip()
    if text.startswith("assert "):
        text = text[len("assert ") :]
    tree = _expression(text)
    if tree is None:
        return None
    body = tree.body
    if isinstance(body, ast.Compare) and len(body.ops) == 1 and isinstance(body.ops[0], ast.Eq):
        left, right = body.left, body.comparators[0]
        if _is_call_of_f(left) or _is_call_of_f(right):
            other = right if _is_call_of_f(left) else left
            return ast.get_source_segment(text, other)
    if _is_call_of_f(body):
        return None  # the question restated, not an answer
    return text


def _unfenced(text: str) -> str:
    fences = _FENCE.findall(text)
    return fences[-1] if fences else text.replace("`", "")


def _last_valid(candidates: list[str]) -> str | None:
    for candidate in reversed(candidates):
        if (value := _value(candidate)) is not None:
            return value
    return None


def extract_answer(text: str) -> str | None:
    """The predicted return value (Python source) of a CRUXEval response (rules above), or None."""
    if (found := _last_valid([_unfenced(t) for t in _TAGGED.findall(text)])) is not None:
        return found
    if (found := _last_valid(_ASSERT.findall(text))) is not None:
        return found
    fenced = [f for f in _FENCE.findall(text) if f.strip() and "\n" not in f.strip()]
    if (found := _last_valid(fenced)) is not None:
        return found
    stated = [
        re.sub(r"\.$", "", s.strip().strip("`").strip()).strip("`") for s in _STATED.findall(text)
    ]
    if (found := _last_valid(stated)) is not None:
        return found
    return _value(text)


@dataclass
class CRUXEvalKnobs(Knobs):
    # "contained" (namespaces, see harness.sandbox) or "trusted" (no namespaces; only for code you
    # trust). Whether this machine can contain the code: harness.sandbox.check, in `check`.
    sandbox: str = "contained"


class CRUXEval(Benchmark):
    name = "cruxeval"
    label = "CRUXEval"
    Knobs = CRUXEvalKnobs
    limits = sandbox.Limits()

    @classmethod
    def validate(cls, knobs: CRUXEvalKnobs, key: str) -> None:
        super().validate(knobs, key)
        if knobs.sandbox not in sandbox.MODES:
            raise ConfigError(
                f"{key}.sandbox={knobs.sandbox!r}; allowed: {', '.join(sandbox.MODES)}"
            )

    def __init__(self, cfg):
        super().__init__(cfg)
        self._graded: dict[tuple[str, str, str], float] = {}
        self._expected: dict[tuple[str, str], sandbox.Result] = {}  # (code, input) -> f(input)

    def check(self) -> None:
        """Grading runs model-written code: refuse now, before any model loads, if this
        machine cannot contain it (benchmark.sandbox=trusted opts out)."""
        sandbox.check(self.cfg.sandbox)

    def read(self) -> Iterator[Item]:
        for where, index, record in self.jsonl_rows("cruxeval/cruxeval.jsonl"):
            code, args, output = record.get("code"), record.get("input"), record.get("output")
            if not isinstance(code, str) or not re.search(r"^def f\(", code, re.MULTILINE):
                self.report.skipped.append(f"{where}: 'code' does not define a function f")
                continue
            if not isinstance(args, str) or _expression(f"f({args})") is None:
                self.report.skipped.append(f"{where}: 'input' is not a Python argument list")
                continue
            if not isinstance(output, str) or _expression(output) is None:
                self.report.skipped.append(f"{where}: 'output' is not a Python expression")
                continue
            yield CruxItem(
                id=f"cruxeval/{self.cfg.split}/{index}",
                question=f"{code}\n\nf({args})",
                reference=output,
                code=code,
                input=args,
            )

    def messages(self, item: Item) -> list[dict[str, str]]:
        content = f"```python\n{item.code}\n```\n\n" + INSTRUCTION.format(input=item.input)
        return [{"role": "user", "content": content}]

    def extract_answer(self, text: str) -> str | None:
        return extract_answer(text)

    def score(self, item: Item, answer: str | None) -> float:
        if answer is None:
            return 0.0
        key = (item.code, item.input, answer)
        if key not in self._graded:
            score, outcome, why = self._verdict(item, answer)
            self.score_outcomes[outcome] += 1
            if outcome not in ("ok", "error"):
                log.warning(
                    "%s: sandbox %s on %s (answer %.60r): %s",
                    self.label,
                    outcome,
                    item.id,
                    answer,
                    why,
                )
            self._graded[key] = score
        return self._graded[key]

    def _verdict(self, item: CruxItem, answer: str) -> tuple[float, str, str]:
        """(score, outcome, reason): decided here, from values parsed here."""
        limits = replace(self.limits, mode=self.cfg.sandbox)
        where = (item.code, item.input)
        if where not in self._expected:
            self._expected[where] = sandbox.evaluate(f"f({item.input})", item.code, limits)
        expected = self._expected[where]
        if expected.status != "ok":
            return 0.0, expected.status, f"computing f({item.input:.60}): {expected.error}"
        try:
            predicted = sandbox.literal(answer)
        except ValueError:
            result = sandbox.evaluate(answer, "", limits)
            if result.status != "ok":
                return 0.0, result.status, result.error
            predicted = result.value
        if sandbox.same(predicted, expected.value):
            return 1.0, "ok", ""
        return 0.0, "error", "wrong answer"
