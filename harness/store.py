"""Content-addressed, append-only store of generations (proposals and aggregations).

A generation is keyed by the sha256 of (model identity, conversation, sampling parameters
without the seed, base seed, sample index). vLLM seeds sample j of a request with seed + j, so
sample j is the same record whether a configuration asks for 4 samples or 8: growing k, re-running
a command or resuming after a crash regenerates nothing that is stored.

Layout: `<root>/<host>-<pid>-<random>.jsonl`, one shard per writing process (created at its
first write), so concurrent jobs on a shared file system never write to the same file;
`<root>/locks/` holds the stream locks (created at the first claim that may write), and
`<root>/.torn-tails.json` the torn tails already reported. A directory holding anything else
(the data folder, say) is refused. Each write appends whole lines and fsyncs; a failed write
is cut back, so no partial line stays behind.

A line is a `Generation` (harness.records) plus `written` (Unix time) and `checksum` (sha256 of
the line's other fields). Every line is verified when read:
  * blank lines are ignored;
  * a line that does not parse, or whose checksum does not match, is torn: skipped and
    counted in `torn`; an unterminated last line (a crash, or a writer still writing) is
    reported once (remembered in `.torn-tails.json`), then only counted;
  * a line with wrong field types (key not a string, text missing, ...) is skipped, counted
    in `invalid` and generated again;
  * the same key with different texts (in two shards, say) is counted in `conflicts` and the
    earliest written line is served (lines without `written`, from before it existed, first).
Lines without `checksum` or `written` (written before they existed) are served unverified.
A store on a read-only file system can be read and claimed; only `put` needs it writable.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import MISSING, fields
from pathlib import Path

from harness import locks
from harness.errors import PathError
from harness.records import Generation

log = logging.getLogger(__name__)

SHARD = re.compile(r".+-\d+-[0-9a-f]{8}\.jsonl")  # <host>-<pid>-<random>.jsonl
LOCKS = "locks"
TORN_TAILS = ".torn-tails.json"
_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "None": (type(None),)}


def generation_key(
    model: str, conversation: list[dict], sampling: dict, base_seed: int | None, sample_index: int
) -> str:
    """Key of one generation; `sampling` must not contain the seed or the number of samples."""
    payload = {
        "model": model,
        "conversation": conversation,
        "sampling": sampling,
        "base_seed": base_seed,
        "sample_index": sample_index,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def checksum(line: dict) -> str:
    """sha256 of a store line's fields other than `checksum` itself."""
    body = {k: v for k, v in line.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _field_rules() -> list[tuple[str, bool, tuple[type, ...], str]]:
    """(name, required, allowed types, declared type) of each Generation field."""
    return [
        (
            f.name,
            f.default is MISSING and f.default_factory is MISSING,
            tuple(t for name in str(f.type).split("|") for t in _TYPES.get(name.strip(), ())),
            str(f.type),
        )
        for f in fields(Generation)
    ]


_RULES = _field_rules()  # computed once: a large store checks every line against them
_NAMES = frozenset(name for name, *_ in _RULES)


def type_problem(line: dict) -> str | None:
    """Why `line` cannot be a Generation (a field missing or of the wrong type), else None."""
    for name, required, allowed, declared in _RULES:
        if name not in line:
            if required:
                return f"'{name}' is missing"
            continue
        value = line[name]
        if allowed and (type(value) is bool or not isinstance(value, allowed)):
            return f"'{name}' is not of type {declared}"
    if not line["key"]:
        return "'key' is empty"
    return None


def _written(line: dict) -> float:
    value = line.get("written")
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else -math.inf


def _close(fds: list[int]) -> None:
    while fds:
        locks.close(fds.pop())


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


class Store:
    """Generations by key: `get(key)`, `put([Generation])`, `claim([stream])` around generating.

    Raises `PathError` (which="store") when the directory cannot be used: a file, not creatable,
    holding non-store files, or (on `put`) not writable or full.
    """

    def __init__(self, root: str | Path):
        if not str(root).strip():
            raise PathError("store", root, "the path is empty (is HARNESS_STORE_DIR set to ''?)")
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise PathError("store", self.root, "it is a file, not a directory")
        if not self.root.exists():
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise PathError.from_os("store", self.root, e, "creating it") from e
        self._check_contents()
        self.shard = (
            self.root / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        )
        self.records: dict[str, Generation] = {}
        self.torn = 0  # lines that do not parse or fail their checksum; torn tails
        self.invalid = 0  # lines with missing fields or wrong types
        self.conflicting: set[str] = set()  # keys seen with two different texts
        self.read_to: dict[Path, tuple[int, int]] = {}  # shard -> (bytes, lines) already read
        self.torn_tails: set[tuple[Path, int]] = set()  # unterminated last lines, counted
        self._order: dict[str, tuple[float, str, int]] = {}  # key -> (written, shard, line)
        self.refresh()

    def _check_contents(self) -> None:
        """Refuse a directory holding anything but shards, `locks/` and hidden files."""
        try:
            entries = sorted(self.root.iterdir())
        except OSError as e:
            raise PathError.from_os("store", self.root, e, "listing it") from e
        foreign = [
            p.name + ("/" if p.is_dir() else "")
            for p in entries
            if not (
                p.name.startswith(".")
                or (p.name == LOCKS and p.is_dir())
                or (SHARD.fullmatch(p.name) and p.is_file())
            )
        ]
        if foreign:
            shown = ", ".join(foreign[:3]) + (
                f" and {len(foreign) - 3} more" if foreign[3:] else ""
            )
            raise PathError(
                "store",
                self.root,
                f"holds files that are not store shards ({shown}); is it the data folder? "
                "point store_dir at an empty directory or an existing store",
            )

    @property
    def conflicts(self) -> int:
        return len(self.conflicting)

    @property
    def writable(self) -> bool:
        return os.access(self.root, os.W_OK)

    def require_writable(self) -> None:
        """`PathError` now (before generating anything) when generations cannot be stored."""
        if not self.writable:
            reason = "the file system is read-only" if _read_only_fs(self.root) else "not writable"
            raise PathError("store", self.root, f"{reason}; generations cannot be stored")

    def summary(self) -> str:
        return (
            f"{len(self)} generations ({self.torn} torn, {self.invalid} invalid lines skipped; "
            f"{self.conflicts} conflicting keys)"
        )

    def refresh(self) -> None:
        """Read what is new in every shard (including other writers' new lines).

        Only whole lines are read; an unterminated last line (torn by a crash, or still being
        written by another process) is counted once as torn and read again next time.
        """
        shards = sorted(p for p in self.root.glob("*.jsonl") if SHARD.fullmatch(p.name))
        for path in shards:
            offset, lineno = self.read_to.get(path, (0, 0))
            try:
                with path.open("rb") as f:
                    f.seek(offset)
                    data = f.read()
            except FileNotFoundError:
                continue
            except OSError as e:
                raise PathError.from_os("store", self.root, e, f"reading {path.name}") from e
            end = data.rfind(b"\n") + 1
            for raw in data[:end].split(b"\n")[:-1]:
                lineno += 1
                if raw.strip():
                    self._read_line(path, lineno, raw)
            self.read_to[path] = (offset + end, lineno)
            if data[end:].strip():
                self._torn_tail(path, offset + end, lineno + 1)

    def _read_line(self, path: Path, lineno: int, raw: bytes) -> None:
        where = f"{path}:{lineno}"
        try:
            line = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or absurdly nested
            self.torn += 1
            log.warning("store: skipping torn record %s (not JSON)", where)
            return
        problem = type_problem(line) if isinstance(line, dict) else "not a JSON object"
        if problem is not None:
            self.invalid += 1
            log.warning(
                "store: skipping invalid record %s (%s); it is generated again", where, problem
            )
            return
        if "checksum" in line and line["checksum"] != checksum(line):
            self.torn += 1
            log.warning("store: skipping torn record %s (checksum mismatch)", where)
            return
        # type_problem checked every field: build the Generation without from_json's lookups
        record = Generation(**{k: v for k, v in line.items() if k in _NAMES})
        self._keep(record, (_written(line), path.name, lineno))

    def _keep(self, record: Generation, order: tuple[float, str, int]) -> None:
        """Hold `record` unless an earlier written line holds its key; warn on different texts."""
        held = self.records.get(record.key)
        if held is None:
            self.records[record.key], self._order[record.key] = record, order
            return
        earlier = order < self._order[record.key]
        if held.text != record.text and record.key not in self.conflicting:
            self.conflicting.add(record.key)
            a, b = sorted([order, self._order[record.key]])
            log.warning(
                "store: key %s has different texts in %s:%d and %s:%d; serving the earlier "
                "written (%s:%d)",
                record.key,
                *a[1:],
                *b[1:],
                *a[1:],
            )
        if earlier:
            self.records[record.key], self._order[record.key] = record, order

    def _torn_tail(self, path: Path, offset: int, lineno: int) -> None:
        if (path, offset) in self.torn_tails:
            return
        self.torn_tails.add((path, offset))
        self.torn += 1
        mark = f"{path.name}:{offset}"
        reported = self._reported_tails()
        if mark in reported:
            log.info("store: skipping torn record %s:%d (reported before)", path, lineno)
            return
        log.warning(
            "store: skipping torn (or unfinished) record %s:%d; reported once, then only counted",
            path,
            lineno,
        )
        live = {p.name for p in self.root.glob("*.jsonl")}
        kept = sorted({m for m in reported if m.rsplit(":", 1)[0] in live} | {mark})
        self._write_state(TORN_TAILS, json.dumps(kept, indent=0) + "\n")

    def _reported_tails(self) -> set[str]:
        try:
            found = json.loads((self.root / TORN_TAILS).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return set()
        return {m for m in found if isinstance(m, str)} if isinstance(found, list) else set()

    def _write_state(self, name: str, text: str) -> None:
        """Best effort (a read-only store just reports again next time)."""
        tmp = self.root / f"{name}.{os.getpid()}.tmp"
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.root / name)
        except OSError as e:
            log.debug("store: cannot remember reported torn tails: %s", e)
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass

    @contextmanager
    def claim(self, names: list[str]) -> Iterator[None]:
        """Hold exclusive locks on `names` while generating what they cover, then refresh.

        Concurrent jobs sharing the store (a sweep's SLURM jobs) take the lock of a stream of
        generations (model and sampling parameters) before generating it; a job that waited
        refreshes and finds what the other job stored, so nothing is sampled twice. Locks are
        `flock`s on `<root>/locks/<name>`, released by the kernel if the holder dies; they are
        taken in sorted order, so two jobs never wait for each other. A store that cannot be
        written (or whose locks cannot be created) takes no locks: it can serve what is stored,
        and `put` raises `PathError`.
        """
        held: list[int] = []  # lock file descriptors, also in locks.HELD (closed in forks)
        try:
            if self.writable:
                folder = self.root / LOCKS
                try:
                    folder.mkdir(exist_ok=True)
                    for name in sorted(set(names)):
                        fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT, 0o644)
                        held.append(locks.hold(fd))
                except OSError as e:  # e.g. root-squashed NFS: reading needs no locks
                    _close(held)
                    log.info(
                        "store: no stream locks (%s); serving what is stored, a write will fail",
                        PathError.from_os("store", self.root, e, "creating its locks"),
                    )
                for fd, name in zip(held, sorted(set(names)), strict=False):
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        log.info("store: waiting for another job generating stream %s", name)
                        fcntl.flock(fd, fcntl.LOCK_EX)
            self.refresh()
            yield
        finally:
            _close(held)  # closing releases the flock

    def get(self, key: str) -> Generation | None:
        return self.records.get(key)

    def put(self, records: list[Generation]) -> None:
        """Append generations to this process's shard, durably (whole lines or nothing)."""
        if not records:
            return
        now = time.time()
        lines = []
        for r in records:
            line = r.to_json() | {"written": now}
            line["checksum"] = checksum(line)
            lines.append(json.dumps(line) + "\n")
        self._append("".join(lines).encode("utf-8"))
        for r in records:
            self._keep(r, (now, self.shard.name, 0))

    def _append(self, data: bytes) -> None:
        try:
            fd = os.open(self.shard, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise PathError.from_os("store", self.root, e, "creating its shard") from e
        start = None
        try:
            start = os.fstat(fd).st_size
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as e:
            self._cut_back(fd, start)
            raise PathError.from_os("store", self.root, e, "writing generations") from e
        finally:
            os.close(fd)

    def _cut_back(self, fd: int, size: int | None) -> None:
        """Remove a partly written batch (and the shard, if it was new)."""
        try:
            if size is not None:
                os.ftruncate(fd, size)
            if not size:
                self.shard.unlink(missing_ok=True)
        except OSError as e:
            log.debug("store: could not cut back %s: %s", self.shard, e)

    def __len__(self) -> int:
        return len(self.records)
