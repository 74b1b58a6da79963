"""Content-addressed, append-only store of generations (proposals and aggregations).

A generation is keyed by the sha256 of (model identity, conversation, sampling parameters
without the seed, base seed, sample index). vLLM seeds sample j of a request with seed + j, so
sample j is the same record whether a configuration asks for 4 samples or 8: growing k, re-running
a command or resuming after a crash regenerates nothing that is stored.

Layout: `<root>/<host>-<pid>-<random>.jsonl`, one shard per writing process, so concurrent jobs
on a shared file system never write to the same file. Each write appends whole lines and fsyncs.
A line that does not parse (a record torn by a crash) is skipped with a warning and counted,
never read back as data.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.records import Generation

log = logging.getLogger(__name__)


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


class Store:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.shard = (
            self.root / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        )
        self.records: dict[str, Generation] = {}
        self.torn = 0
        self.read_to: dict[Path, tuple[int, int]] = {}  # shard -> (bytes, lines) already read
        self.torn_tails: set[tuple[Path, int]] = set()  # unterminated last lines, reported
        self.refresh()

    def refresh(self) -> None:
        """Read what is new in every shard (including other writers' new lines).

        Only whole lines are read; an unterminated last line (torn by a crash, or still being
        written by another process) is counted once as torn and read again next time.
        """
        for path in sorted(self.root.glob("*.jsonl")):
            offset, lineno = self.read_to.get(path, (0, 0))
            with path.open("rb") as f:
                f.seek(offset)
                data = f.read()
            end = data.rfind(b"\n") + 1
            for line in data[:end].splitlines():
                lineno += 1
                try:
                    record = Generation.from_json(json.loads(line))
                    key = record.key
                except (
                    json.JSONDecodeError,
                    UnicodeDecodeError,
                    AttributeError,
                    KeyError,
                    TypeError,
                ):
                    self.torn += 1
                    log.warning("store: skipping torn or invalid record %s:%d", path, lineno)
                    continue
                self.records.setdefault(key, record)
            self.read_to[path] = (offset + end, lineno)
            if end < len(data) and (path, offset + end) not in self.torn_tails:
                self.torn_tails.add((path, offset + end))
                self.torn += 1
                log.warning("store: skipping torn (or unfinished) record %s:%d", path, lineno + 1)

    @contextmanager
    def claim(self, names: list[str]) -> Iterator[None]:
        """Hold exclusive locks on `names` while generating what they cover, then refresh.

        Concurrent jobs sharing the store (a sweep's SLURM jobs) take the lock of a stream of
        generations (model and sampling parameters) before generating it; a job that waited
        refreshes and finds what the other job stored, so nothing is sampled twice. Locks are
        `flock`s on `<root>/locks/<name>`, released by the kernel if the holder dies; they are
        taken in sorted order, so two jobs never wait for each other.
        """
        (self.root / "locks").mkdir(exist_ok=True)
        held = []
        try:
            for name in sorted(set(names)):
                f = (self.root / "locks" / name).open("a")
                held.append(f)
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    log.info("store: waiting for another job generating stream %s", name)
                    fcntl.flock(f, fcntl.LOCK_EX)
            self.refresh()
            yield
        finally:
            for f in reversed(held):
                f.close()  # closing releases the flock

    def get(self, key: str) -> Generation | None:
        return self.records.get(key)

    def put(self, records: list[Generation]) -> None:
        """Append generations to this process's shard, durably."""
        if not records:
            return
        with self.shard.open("a", encoding="utf-8") as f:
            f.write("".join(json.dumps(r.to_json()) + "\n" for r in records))
            f.flush()
            os.fsync(f.fileno())
        for r in records:
            self.records.setdefault(r.key, r)

    def __len__(self) -> int:
        return len(self.records)
