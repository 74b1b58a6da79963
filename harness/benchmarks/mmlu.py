"""MMLU (Hendrycks et al. 2021) and MMLU-Redux (Gema et al. 2024): 4-option multiple choice.

Sources:
  * `mmlu`: `<data_dir>/mmlu/<split>/<subject>_<split>.csv` (header row; columns `question`,
    `choice0`..`choice3`, `answer` 0-3), 57 subjects, 14,042 test questions; else the hub
    dataset `cais/mmlu` (config `all`). Item ids are `mmlu/<subject>/<row index>`.
  * `mmlu_redux`: `<data_dir>/mmlu_redux/mmlu_<subject>.csv`, 57 subjects x 100 questions with
    expert error labels; else the hub dataset `edinburgh-dawg/mmlu-redux-2.0` (one config per
    subject). Item ids are `mmlu_redux/<subject>/<row index>`. The files are irregular: the
    delimiter (`;` or `,`) is picked from the header line, one file is cp1252 rather than UTF-8
    (UTF-8 is tried first), columns are read by header name (their order varies), `choices` is
    a Python-list literal and `answer` is 0-3. Labels are filtered as ZeroEval does: keep
    `error_type` "ok"; for "wrong groundtruth" use `correct_answer` when it names an option
    (a letter A-D, or a 0-based index 0-3: both spellings occur, and the indices were checked
    against the option texts); drop every other label. Label-filtered questions are counted in
    `MMLURedux.filtered` (by normalised label), not in `report.skipped`, which is kept for
    malformed rows (bad `choices`, bad `answer`, empty question, or a URL in place of one).

Order: subjects are interleaved round-robin (subject order sorted by name: the first question
of every subject, then the second of every subject, ...), so `limit: 57` takes one question
from each subject and a small `limit` still spreads over many subjects. For a limit that covers
every subject evenly, use a multiple of 57.

Prompt: the question, the options as "A. ...".."D. ...", then a request to answer with the
letter and end with a line "Answer: X".

Extraction (`extract_answer`, a pure function of the text; the rules were tuned on real outputs
of our CPU models, tests/data/extraction/mmlu.jsonl, with lm-eval's MMLU letter filters as the
reference for patterns):
  0. Normalise: NFKC (full-width "：", "（Ｂ）" become ":", "(B)"), markdown `*` and `_` dropped,
     LaTeX wrappers unwrapped (`\\boxed{B}`, `\\text{B}`, `\\textbf{(B)}`, `$B$`, `\\(B\\)`).
  1. Stated answers: a letter right after "answer is", "Answer:", "answer would be", "correct /
     best / right option is", "answer is option", "I choose", "答案" ...; or before "is the
     correct answer" / "is correct" ("Option C is correct"). The letter may be upper case, in
     parentheses, or lower case when it cannot be an article ("answer: c", "(c)", "c)"), and
     may be followed by its option text ("Answer: C) Paris"). The last statement wins, so a
     self-correction later in the text counts. A statement that names two letters ("A or C",
     "B and D") is no answer, and so are statements naming different letters with only
     connectors or hedging words between them ("\\boxed{A} or \\boxed{C}", "The answer is B.
     Hmm, it could also be D."). "so option b" / "therefore choice c" state a letter too.
  2. Otherwise lines that open with a letter marker: "B", "B.", "(B)", "C) text", "A. <option
     text>", "B: text" (SmolLM2's usual form). When they name one letter, that letter; when
     they name several (the options restated), no answer.
  3. Otherwise letters in parentheses anywhere ("Paris (B) is the capital"), as lm-eval's
     flexible filter reads them: one distinct letter is the answer, several are none.
  4. Otherwise None. A bare "A" in prose ("A good start ...") never counts.
Scoring: 1.0 when the letter equals the reference letter.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from harness.benchmarks.base import Benchmark, Item, read_bytes, undecodable
from harness.errors import DataError

log = logging.getLogger(__name__)

LETTERS = "ABCD"
INSTRUCTION = "Answer with the letter of the correct option. End with a line 'Answer: X'."

# An option letter: "(B)" / "(b)", an upper-case "B" not inside a word, or a lower-case "b" that
# cannot be an article (followed by ".", ")", ":", "," or the end of the line).
_LETTER = (
    r"(?:\((?P<{0}p>[A-Da-d])\)|(?P<{0}u>[A-D])(?![A-Za-z0-9'])"
    r"|(?P<{0}l>[a-d])(?=[.):,]|[ \t]*$))"
)
_FIRST, _SECOND = _LETTER.format("a"), _LETTER.format("b")
_CONNECTOR = r"[ \t]*(?:,|/|&|\bor\b|\band\b|\bnor\b)[ \t]*(?i:(?:option|choice)[ \t]+)?"
# Statements that put the letter after the anchor ("The correct answer is (B)", "Answer: c") ...
_ANCHOR_BEFORE = (
    r"(?i:\banswer(?:[ \t]+(?:choice|option|to[ \t]+(?:the|this)[ \t]+question))?"
    r"|\b(?:correct|right|best|final|most[ \t]+\w+)[ \t]+(?:option|choice|letter)"
    r"|\bi[ \t]+(?:would[ \t]+|will[ \t]+)?(?:choose|select|pick|go[ \t]+with)"
    r"|\b(?:so|thus|therefore|hence)[ \t,]+(?:it(?:'s|[ \t]+is)[ \t]+)?(?=(?:option|choice)\b)"
    r"|答案)"
    r"(?i:[ \t]+(?:is|would[ \t]+be|should[ \t]+be|will[ \t]+be|must[ \t]+be)|[ \t]*是|[ \t]*为)?"
    r"[ \t]*(?:[:=-][ \t]*\n?)?[ \t]*(?i:(?:option|choice|letter)[ \t]*[:-]?[ \t]*)?"
)
# ... and statements that put it before ("Option C is correct", "(B) is the right answer").
_ANCHOR_AFTER = (
    r"(?i:[ \t]+(?:is|would[ \t]+be)[ \t]+(?:the[ \t]+)?(?:correct|right|best|true|answer)\b)"
)
_STATED = re.compile(
    _ANCHOR_BEFORE + _FIRST + f"(?P<more>{_CONNECTOR}{_SECOND}(?!(?i:[ \t]+(?:is|are|was)\\b)))?",
    re.MULTILINE,
)
_STATED_AFTER = re.compile(
    r"(?:(?<![A-Za-z0-9'])(?i:(?:option|choice)[ \t]*)?)" + _FIRST + _ANCHOR_AFTER, re.MULTILINE
)
# A line that opens with a letter marker: "B", "B.", "(B)", "C) text", "A. text", "B: text".
_LINE_MARKER = re.compile(
    r"^[ \t>#-]*(?:\((?P<ap>[A-Da-d])\)|(?P<au>[A-D])(?:[.):]|[ \t]*$|[ \t]+[-–—][ \t])"
    r"|(?P<al>[a-d])\))",
    re.MULTILINE,
)
_PARENTHESISED = re.compile(r"\(([A-D])\)")
# What may stand between two statements offered as alternatives ("\boxed{A} or \boxed{C}",
# "The answer is B. Hmm, it could also be D."): a hedge, no answer.
_HEDGE_BETWEEN = re.compile(
    r"(?i:\s|[.,;:!?()]|\b(?:or|and|maybe|perhaps|possibly|either|hmm|it|could|might|would|also"
    r"|be|is|the|answer)\b)*"
)
_LATEX_WRAPPER = re.compile(
    r"\\(boxed|fbox|text|textbf|textrm|textit|texttt|mathrm|mathbf|mathit)\s*\{([^{}]*)\}"
)
_URL = re.compile(r"\s*https?://\S+\s*")


def _unwrap(m: re.Match) -> str:
    """A box is a statement of the answer; other wrappers only style their content."""
    return f" answer: {m.group(2)} " if m.group(1) in ("boxed", "fbox") else m.group(2)


def _normalise(text: str) -> str:
    """Full-width forms folded, markdown emphasis dropped, LaTeX wrappers around letters removed."""
    text = unicodedata.normalize("NFKC", text)
    for _ in range(3):  # nested: \boxed{\text{B}}
        text = _LATEX_WRAPPER.sub(_unwrap, text)
    text = re.sub(r"\\\((.{0,12}?)\\\)", r"\1", text)
    text = re.sub(r"\\\[(.{0,12}?)\\\]", r"\1", text)
    text = re.sub(r"\$+([^$\n]{0,12}?)\$+", r"\1", text)
    text = text.replace("*", "")
    return re.sub(r"(?<![A-Za-z0-9])_+|_+(?![A-Za-z0-9])", "", text)


def _letter(m: re.Match, name: str) -> str:
    return next(m.group(name + k) for k in "pul" if m.group(name + k)).upper()


def extract_answer(text: str) -> str | None:
    """The option letter a response settles on (rules in the module docstring), or None."""
    text = _normalise(text)
    stated = [
        (m.start(), m.end(), None if m.group("more") else _letter(m, "a"))
        for m in _STATED.finditer(text)
    ]
    stated += [(m.start(), m.end(), _letter(m, "a")) for m in _STATED_AFTER.finditer(text)]
    if stated:
        stated.sort()
        group = [stated[-1]]
        for s in reversed(stated[:-1]):
            if s[1] > group[0][0] or not _HEDGE_BETWEEN.fullmatch(text[s[1] : group[0][0]]):
                break
            group.insert(0, s)
        return group[-1][2] if len({s[2] for s in group}) == 1 else None
    marked = {_letter(m, "a") for m in _LINE_MARKER.finditer(text)}
    if not marked:
        marked = {m.group(1) for m in _PARENTHESISED.finditer(text)}
    return marked.pop() if len(marked) == 1 else None


def format_question(question: str, choices: list[str]) -> str:
    options = "\n".join(
        f"{letter}. {choice}"
        for letter, choice in zip(LETTERS[: len(choices)], choices, strict=True)
    )
    return f"{question.strip()}\n\n{options}\n\n{INSTRUCTION}"


def _answer_letter(raw: object) -> str | None:
    """`answer` 0-3 (int or digit string) -> "A".."D"; anything else -> None."""
    value = str(raw).strip()
    return LETTERS[int(value)] if value in {"0", "1", "2", "3"} else None


def _round_robin(groups: list[list[Item]]) -> Iterator[Item]:
    for rank in range(max((len(g) for g in groups), default=0)):
        for group in groups:
            if rank < len(group):
                yield group[rank]


def _csv_records(
    path: Path, text: str, delimiter: str, skipped: list[str]
) -> Iterator[tuple[str, dict]]:
    """("file:line" of the record's first line, row by header name) for every CSV record.

    `text` is decoded with errors="surrogateescape": records holding bytes that were not
    UTF-8, and records the csv module rejects, are appended to `skipped` instead.
    """
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        if reader.fieldnames is None:  # reading the header row; an empty file has none
            return
    except csv.Error as e:
        skipped.append(f"{path}:1: no CSV header ({e})")
        return
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            skipped.append(f"{path}:{start}: not CSV ({e})")
        else:
            if undecodable(row):
                skipped.append(f"{path}:{start}: not UTF-8")
            else:
                yield f"{path}:{start}", row
        start = reader.line_num + 1


class _MultipleChoice(Benchmark):
    def messages(self, item: Item) -> list[dict[str, str]]:
        return [{"role": "user", "content": item.question}]

    def extract_answer(self, text: str) -> str | None:
        return extract_answer(text)

    def score(self, item: Item, answer: str | None) -> float:
        return float(answer is not None and answer == item.reference)

    def _checked(self, where: str, ident: str, question, choices, letter) -> Item | None:
        if not isinstance(question, str) or not question.strip():
            self.report.skipped.append(f"{where}: missing or empty question")
        elif _URL.fullmatch(question):
            self.report.skipped.append(f"{where}: question is a URL, not a question")
        elif not (
            isinstance(choices, list | tuple)
            and len(choices) == 4
            and all(isinstance(c, str | int | float) for c in choices)
        ):
            self.report.skipped.append(f"{where}: choices are not a list of 4 options")
        elif letter is None:
            self.report.skipped.append(f"{where}: answer is not an index 0-3")
        else:
            return Item(
                id=ident,
                question=format_question(question, [str(c) for c in choices]),
                reference=letter,
            )
        return None

    def read(self) -> Iterator[Item]:
        """Local files (one per subject) if any, else the hub; subjects interleaved."""
        folder, pattern = self._local_files()
        if folder is None:
            self.check_hub(self._expected, files="files")
            yield from _round_robin(self._hub_groups())
            return
        if not folder.is_dir():
            raise DataError(f"{self.label}: {folder} is a file, not a folder of CSV files")
        files = sorted(p for p in folder.glob(pattern) if p.is_file())
        if not files:
            raise DataError(
                f"{self.label}: no files {folder / pattern} (benchmark.split={self.cfg.split!r}"
                f"; {folder} holds {len(list(folder.iterdir()))} entries)"
            )
        self.report.source = str(folder)
        yield from _round_robin([self._file_items(path) for path in files])


class MMLU(_MultipleChoice):
    name = "mmlu"
    label = "MMLU"

    @property
    def _expected(self) -> str:
        return f"mmlu/{self.cfg.split}/<subject>_{self.cfg.split}.csv"

    def _local_files(self) -> tuple[Path | None, str]:
        split = self.cfg.split
        return self.local_path(f"mmlu/{split}"), f"*_{split}.csv"

    def _file_items(self, path: Path) -> list[Item]:
        subject = path.name[: -len(f"_{self.cfg.split}.csv")]
        group = []
        text = read_bytes(path, self.label).decode("utf-8-sig", errors="surrogateescape")
        records = _csv_records(path, text, ",", self.report.skipped)
        for index, (where, row) in enumerate(records):
            choices = [row.get(f"choice{k}") for k in range(4)]
            if None in choices or None in row:
                self.report.skipped.append(f"{where}: wrong number of columns")
                continue
            item = self._checked(
                where,
                f"mmlu/{subject}/{index}",
                row.get("question"),
                choices,
                _answer_letter(row.get("answer")),
            )
            if item is not None:
                group.append(item)
        return group

    def _hub_groups(self) -> list[list[Item]]:
        import datasets

        self.report.source = f"hub:{self.cfg.hub_id}"
        try:
            rows = datasets.load_dataset(self.cfg.hub_id, self.cfg.hub_config, split=self.cfg.split)
        except Exception as e:
            raise self.hub_error(self._expected, e, files="files") from e
        groups: dict[str, list[Item]] = {}
        for i, row in enumerate(rows):
            subject = row.get("subject") or "unknown"
            group = groups.setdefault(subject, [])
            item = self._checked(
                f"{self.cfg.hub_id}[{i}]",
                f"mmlu/{subject}/{len(group)}",
                row.get("question"),
                row.get("choices"),
                _answer_letter(row.get("answer")),
            )
            if item is not None:
                group.append(item)
        return [groups[s] for s in sorted(groups)]
