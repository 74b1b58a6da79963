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
Extraction (`extract_answer`, pure): the last of "Answer: X" / "answer is (X)" / "option: X" /
`\\boxed{X}` (case-insensitive keyword, X an uppercase letter A-D, optionally in parentheses,
bold or `$`, and not followed by another letter or digit, so "answer is Absolutely" does not
count); otherwise a response that is a single letter A-D with optional punctuation ("B.",
"(C)", "**D**"); otherwise None. A bare "A" in prose ("A good start ...") never counts.
Scoring: 1.0 when the letter equals the reference letter.
"""

from __future__ import annotations

import ast
import csv
import io
import logging
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from harness.benchmarks.base import Benchmark, Item, boxed_contents, read_bytes, undecodable
from harness.errors import DataError

log = logging.getLogger(__name__)

LETTERS = "ABCD"
INSTRUCTION = "Answer with the letter of the correct option. End with a line 'Answer: X'."

_STATED = re.compile(
    r"\b(?i:answer|option|choice)\s*(?:(?i:is)\s*:?|:)[\s*_$]*\(?[\s*_]*([A-D])[\s*_]*\)?"
    r"(?![A-Za-z0-9])"
)
_BOXED_LETTER = re.compile(r"\(?([A-D])\)?(?![A-Za-z0-9])")
_ALONE = re.compile(r"[\s*_$(\[]*([A-D])[\s*_$)\].:]*")
_URL = re.compile(r"\s*https?://\S+\s*")


def extract_answer(text: str) -> str | None:
    """The option letter a response settles on (rules in the module docstring), or None."""
    found = [(m.start(), m.group(1)) for m in _STATED.finditer(text)]
    for m in re.finditer(r"\\boxed\s*\{", text):
        content = boxed_contents(text[m.start() :])[:1]
        if content:
            inner = re.sub(r"\\(?:text|textbf|mathrm)\s*\{([^{}]*)\}", r"\1", content[0]).strip()
            if b := _BOXED_LETTER.match(inner):
                found.append((m.start(), b.group(1)))
    if found:
        return max(found)[1]
    if alone := _ALONE.fullmatch(text):
        return alone.group(1)
    return None


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


def normalise_label(raw: object) -> str:
    """'Wrong Groundtruth', 'wrong_groundtruth ' -> 'wrong groundtruth'; None -> ''."""
    return re.sub(r"[\s_]+", " ", str(raw or "")).strip().lower()


def corrected_letter(raw: object) -> str | None:
    """A `correct_answer` naming an option: a letter A-D or a 0-based index 0-3."""
    value = str(raw if raw is not None else "").strip().strip("()").strip()
    if value.upper() in set(LETTERS) and len(value) == 1:
        return value.upper()
    return _answer_letter(value)


class MMLURedux(_MultipleChoice):
    name = "mmlu_redux"
    label = "MMLU-Redux"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.filtered: Counter[str] = Counter()  # questions dropped for their error label

    def load(self) -> list[Item]:
        self.filtered.clear()
        items = super().load()
        if self.filtered:
            log.info(
                "%s: dropped %d questions by error label (%s)",
                self.name,
                sum(self.filtered.values()),
                ", ".join(f"{k or '<empty>'}: {v}" for k, v in sorted(self.filtered.items())),
            )
        return items

    _expected = "mmlu_redux/mmlu_<subject>.csv"

    def _local_files(self) -> tuple[Path | None, str]:
        return self.local_path("mmlu_redux"), "mmlu_*.csv"

    def _file_items(self, path: Path) -> list[Item]:
        subject = path.stem[len("mmlu_") :]
        raw = read_bytes(path, self.label)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:
                text = raw.decode("cp1252")
            except UnicodeDecodeError:  # neither: the records with bad bytes are skipped
                text = raw.decode("utf-8-sig", errors="surrogateescape")
        first = text.split("\n", 1)[0]
        delimiter = ";" if first.count(";") > first.count(",") else ","
        group = []
        records = _csv_records(path, text, delimiter, self.report.skipped)
        for index, (where, row) in enumerate(records):
            try:
                choices = ast.literal_eval(row.get("choices") or "")
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                choices = None
            item = self._keep(where, f"mmlu_redux/{subject}/{index}", row, choices)
            if item is not None:
                group.append(item)
        return group

    def _keep(self, where: str, ident: str, row: dict, choices) -> Item | None:
        """The item for a row, or None when the row is malformed (recorded) or label-filtered."""
        label = normalise_label(row.get("error_type"))
        letter = _answer_letter(row.get("answer"))
        if label == "wrong groundtruth":
            letter = corrected_letter(row.get("correct_answer"))
            if letter is None:
                self.filtered["wrong groundtruth (no usable correct_answer)"] += 1
                return None
        elif label != "ok":
            self.filtered[label] += 1
            return None
        return self._checked(where, ident, row.get("question"), choices, letter)

    def _hub_groups(self) -> list[list[Item]]:
        import datasets

        self.report.source = f"hub:{self.cfg.hub_id}"
        groups = []
        try:
            subjects = sorted(datasets.get_dataset_config_names(self.cfg.hub_id))
            for subject in subjects:
                rows = datasets.load_dataset(self.cfg.hub_id, subject, split=self.cfg.split)
                group = []
                for i, row in enumerate(rows):
                    ident = f"mmlu_redux/{subject}/{i}"
                    item = self._keep(
                        f"{self.cfg.hub_id}/{subject}[{i}]", ident, row, row.get("choices")
                    )
                    if item is not None:
                        group.append(item)
                groups.append(group)
        except Exception as e:
            raise self.hub_error(self._expected, e, files="files") from e
        return groups
