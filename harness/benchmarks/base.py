"""The benchmark contract: load items, turn an item into a conversation, extract and score answers.

A benchmark's `extract_answer` is a pure function of the response text (module level, so it can
be tested on strings); `score` compares an extracted answer with the item's reference.
"""

from __future__ import annotations

import json
import logging
import os
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

from omegaconf import MISSING

from harness.config import check_tokens
from harness.errors import ConfigError, DataError
from harness.paths import absolute, what_is

log = logging.getLogger(__name__)


TURN_SUFFIX = "/turn{}"  # the id of turn t > 1 of a multi-turn item: "<item id>/turn<t>"
MAX_LIMIT = 10**6  # items per benchmark


@dataclass
class Knobs:
    """Knobs every benchmark has (`benchmark.*`); a benchmark with knobs of its own declares them
    in a subclass, its `Knobs` (judged benchmarks: `judge`, `judge_max_tokens`; CRUXEval:
    `sandbox`). conf/benchmark/<name>.yaml starts from `benchmark_schema/<name>`."""

    name: str = MISSING
    data_dir: str | None = None  # local copy; when absent the public hub is used via `datasets`
    split: str = "test"
    limit: int | None = None  # first N items; null = all
    hub_id: str | None = None
    hub_config: str | None = None
    # the judge model: a knob of judged benchmarks (JudgedKnobs); none for the others
    judge: ClassVar[str | None] = None


@dataclass
class JudgedKnobs(Knobs):
    judge: str | None = None  # the judge model (a conf/model/ name)
    judge_max_tokens: int = 32  # the most tokens it may write per judgement (greedy)


@dataclass(frozen=True)
class Item:
    id: str  # stable across runs: "<benchmark>/<split>/<index in the source file>"
    question: str  # the user turn to answer (of this item's `turn`)
    reference: str  # the gold answer (judged benchmarks: a reference answer, may be empty)
    # Multi-turn benchmarks (MT-Bench): every user turn and its reference; `turn` is 1-based.
    turns: tuple[str, ...] = ()
    turn_references: tuple[str, ...] = ()
    turn: int = 1
    category: str = ""


@dataclass
class LoadReport:
    source: str
    loaded: int = 0
    skipped: list[str] = field(default_factory=list)  # "file:line: reason"


def boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, stripped content) of every balanced \\boxed{...} or \\fbox{...}, in order."""
    found = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            found.append((m.start(), i, text[m.end() : i - 1].strip()))
    return found


def boxed_contents(text: str) -> list[str]:
    """Contents of every \\boxed{...} (or \\fbox{...}), with nested braces balanced."""
    return [content for _, _, content in boxed_spans(text)]


class Benchmark(ABC):
    name: str
    label: str  # as printed in messages, e.g. "MATH-500"
    Knobs: ClassVar[type[Knobs]] = Knobs  # its knobs (a subclass when it has knobs of its own)
    metric = "acc"  # summary key `<name>/<metric>`: the mean score of final answers
    judged = False  # scored by a judge model (see JudgedBenchmark) instead of `score`
    turns = 1  # user turns per item; turn t > 1 is asked after the answer to turn t - 1
    failed_score = 0.0  # the score of an item without a final answer (generation failed)

    def __init__(self, cfg: Knobs):
        self.cfg = cfg
        self.report = LoadReport(source="")
        # how scoring went where it can fail apart from a wrong answer (CRUXEval: the sandbox's
        # status per graded answer); written to metrics.json as `score_outcomes`
        self.score_outcomes: Counter[str] = Counter()

    @classmethod
    def validate(cls, knobs: Knobs, key: str) -> None:
        """Raise ConfigError naming the knob when a value is impossible (before anything runs)."""
        if knobs.limit is not None and not 1 <= knobs.limit <= MAX_LIMIT:
            raise ConfigError(
                f"{key}.limit must be in [1, {MAX_LIMIT}] or null for all items (got {knobs.limit})"
            )

    def check(self) -> None:  # noqa: B027 - a hook: most benchmarks need no check
        """Raise ConfigError when this machine cannot score the benchmark (before models load)."""

    def load(self) -> list[Item]:
        """Valid items (at most `limit`); malformed records are counted in `report`."""
        items = []
        for item in self.read():
            if self.cfg.limit is not None and len(items) >= self.cfg.limit:
                break
            items.append(item)
        self.report.loaded = len(items)
        if self.report.skipped:
            log.warning(
                "%s: skipped %d malformed records (first: %s)",
                self.name,
                len(self.report.skipped),
                self.report.skipped[0],
            )
        return items

    @abstractmethod
    def read(self) -> Iterator[Item]:
        """Yield valid items in source order, recording malformed ones in `self.report.skipped`."""

    @abstractmethod
    def messages(self, item: Item) -> list[dict[str, str]]:
        """The chat conversation that asks the item's question."""

    @abstractmethod
    def extract_answer(self, text: str) -> str | None:
        """The final answer in a response, or None when there is none."""

    @abstractmethod
    def score(self, item: Item, answer: str | None) -> float:
        """1.0 for a correct answer, 0.0 otherwise (None is wrong)."""

    def texts(self, where: str, record: dict, *keys: str) -> list[str] | None:
        """The record's fields `keys`, each a non-empty string; else None, the first bad one
        recorded in `report.skipped` as "<where>: missing or empty '<key>'"."""
        for key in keys:
            value = record.get(key)
            if not isinstance(value, str) or not value.strip():
                self.report.skipped.append(f"{where}: missing or empty '{key}'")
                return None
        return [record[key] for key in keys]

    def followup(self, item: Item, turn: int) -> Item:
        """The item of user turn `turn` (> 1) of a multi-turn item."""
        refs = item.turn_references
        return replace(
            item,
            id=item.id + TURN_SUFFIX.format(turn),
            question=item.turns[turn - 1],
            reference=refs[turn - 1] if len(refs) >= turn else "",
            turn=turn,
        )

    def local_path(self, relative: str) -> Path | None:
        """`<data_dir>/<relative>` when it exists (a file or a folder), else None."""
        if not self.cfg.data_dir:
            return None
        root = Path(absolute(self.cfg.data_dir) or "")  # relative: from the project root
        kind = what_is(root)
        if kind not in (None, "a directory"):
            raise DataError(f"{self.label}: benchmark.data_dir={self.cfg.data_dir!r} is {kind}")
        if not root.is_dir():  # a configured directory that is missing: no silent hub attempt
            raise DataError(
                f"{self.label}: benchmark.data_dir={self.cfg.data_dir!r} does not exist; set "
                "paths.data (or HARNESS_DATA_DIR) to the data directory, or "
                "benchmark.data_dir=null to load from the hub"
            )
        path = root / relative
        kind = what_is(path)
        if kind is not None and kind not in ("a file", "a directory"):
            raise DataError(f"{self.label}: {path} is {kind}, not a data file")
        return path if kind is not None else None

    def local_file(self, relative: str) -> Path | None:
        """`<data_dir>/<relative>` when it exists; `DataError` when it is not a regular file."""
        path = self.local_path(relative)
        if path is not None and not path.is_file():
            raise DataError(f"{self.label}: {path} is not a file (it is {what_is(path)})")
        return path

    def check_hub(self, expected: str, files: str = "file") -> None:
        """`DataError` at once (naming the paths tried) when the hub must not be tried instead
        of the missing local `expected`: benchmark.data_dir is an existing folder, or the hub
        is offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)."""
        data_dir = Path(absolute(self.cfg.data_dir) or "") if self.cfg.data_dir else None
        kind = what_is(data_dir) if data_dir is not None else None
        if kind not in (None, "a directory"):
            raise DataError(f"{self.label}: benchmark.data_dir={self.cfg.data_dir!r} is {kind}")
        offline = [k for k in OFFLINE_VARIABLES if _truthy(os.environ.get(k))]
        if data_dir is not None and data_dir.is_dir():
            why = f"benchmark.data_dir={self.cfg.data_dir!r} is set"
        elif offline:
            why = f"{offline[0]} is set"
        else:
            return
        tried = data_dir / expected if data_dir is not None else None
        raise DataError(
            f"{self.label}: no local {files} {tried or expected}"
            f"{_present(tried, self.cfg.split)} and the hub dataset {self.cfg.hub_id!r} is not "
            f"tried ({why}); check benchmark.split={self.cfg.split!r} and benchmark.data_dir "
            "(null: use the hub)"
        )

    def hub_error(self, expected: str, e: Exception, files: str = "file") -> DataError:
        tried = Path(self.cfg.data_dir).expanduser() / expected if self.cfg.data_dir else expected
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return DataError(
            f"{self.label}: no local {files} {tried} and the hub dataset {self.cfg.hub_id!r} "
            f"(split {self.cfg.split!r}) could not be loaded: {reason}"
        )

    def jsonl_rows(self, relative: str) -> Iterator[tuple[str, int, dict]]:
        """(location, index, record) from `<data_dir>/<relative>`, else from the hub dataset."""
        path = self.local_file(relative)
        if path is not None:
            yield from self.read_jsonl(path)
            return
        self.check_hub(relative)
        import datasets

        self.report.source = f"hub:{self.cfg.hub_id}"
        try:
            rows = datasets.load_dataset(self.cfg.hub_id, self.cfg.hub_config, split=self.cfg.split)
        except Exception as e:
            raise self.hub_error(relative, e) from e
        for i, row in enumerate(rows):
            yield f"{self.cfg.hub_id}[{i}]", i, row

    def read_jsonl(self, path: Path) -> Iterator[tuple[str, int, dict]]:
        """(location, 0-based line index, record) per JSON object line; bad lines (not UTF-8,
        not JSON, not an object) are recorded as "file:line: reason" and skipped."""
        self.report.source = str(path)
        for lineno, raw in enumerate(read_lines(path, self.label), start=1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                self.report.skipped.append(
                    f"{where}: not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})"
                )
                continue
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                self.report.skipped.append(f"{where}: not JSON ({e.msg})")
                continue
            except RecursionError:
                self.report.skipped.append(f"{where}: not JSON (nested too deeply)")
                continue
            if not isinstance(record, dict):
                self.report.skipped.append(f"{where}: not a JSON object")
                continue
            yield where, lineno - 1, record


OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _present(tried: Path | None, split: str) -> str:
    """ "; present: a, b" listing what the folder of a missing file holds (its other splits)."""
    folder = tried.parent if tried is not None else None
    if folder is None or not folder.is_dir():
        return f" (no folder {folder})" if folder is not None else ""
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    shown = ", ".join(names[:8]) + (", ..." if names[8:] else "")
    return f" (split {split!r}; {folder} holds: {shown or 'nothing'})"


def read_bytes(path: Path, label: str) -> bytes:
    """A data file's bytes; `DataError` naming it when it cannot be read."""
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise DataError(f"{label}: {path} is a directory, not a data file") from None
    except OSError as e:
        raise DataError(f"{label}: cannot read {path}: {e.strerror or e}") from None


def read_lines(path: Path, label: str) -> list[bytes]:
    """A data file's lines as bytes, split at "\\n" only (as editors number them), without
    their line ends; the caller decodes them one by one."""
    lines = read_bytes(path, label).split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return [line.removesuffix(b"\r") for line in lines]


def undecodable(value: object) -> bool:
    """Whether a value read with errors="surrogateescape" holds bytes that were not UTF-8."""
    if isinstance(value, str):
        return any("\udc80" <= c <= "\udcff" for c in value)
    if isinstance(value, dict):
        return any(undecodable(k) or undecodable(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(undecodable(v) for v in value)
    return False


class JudgedBenchmark(Benchmark):
    """A benchmark scored by a judge model: `judge_conversations` asks, `verdict` reads the replies.

    Such benchmarks have no extractable answer (`extract_answer` is None); the harness sends every
    proposal and final answer to the judge in one batched stage and stores the judgements.
    """

    judged = True
    Knobs = JudgedKnobs

    @classmethod
    def validate(cls, knobs: JudgedKnobs, key: str) -> None:
        super().validate(knobs, key)
        check_tokens(knobs.judge_max_tokens, f"{key}.judge_max_tokens")

    def extract_answer(self, text: str) -> str | None:
        return None

    def score(self, item: Item, answer: str | None) -> float:
        raise TypeError(f"{self.label} is scored by a judge model, not by `score`")

    @abstractmethod
    def judge_conversations(
        self, item: Item, conversation: list[dict[str, str]], response: str
    ) -> list[list[dict[str, str]]]:
        """The judge prompts for one response to `conversation` (its last turn is the question)."""

    @abstractmethod
    def verdict(self, item: Item, replies: list[str | None]) -> tuple[float | None, list]:
        """(score, per-prompt parsed verdicts) from the judge's replies (None: not generated).

        The score is None when no reply could be parsed: such cases are counted, not scored.
        """
