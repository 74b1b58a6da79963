"""MMLU-Redux (Gema et al. 2024): MMLU questions with expert error labels, filtered as ZeroEval
does. Sources, file quirks and the filter are described in harness.benchmarks.mmlu, which also
holds the prompt, the extraction and the reading shared by both."""

from __future__ import annotations

import ast
import logging
import re
from collections import Counter
from pathlib import Path

from harness.benchmarks.base import Item, read_bytes
from harness.benchmarks.mmlu import LETTERS, _answer_letter, _csv_records, _MultipleChoice

log = logging.getLogger(__name__)


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
