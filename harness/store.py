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

import hashlib
import json
import logging
import os
import socket
import uuid
from pathlib import Path

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
        self.records: dict[str, dict] = {}
        self.torn = 0
        self.refresh()

    def refresh(self) -> None:
        """Read every shard (including other writers' new lines)."""
        for path in sorted(self.root.glob("*.jsonl")):
            with path.open(encoding="utf-8") as f:
                for lineno, line in enumerate(f, start=1):
                    try:
                        record = json.loads(line)
                        key = record["key"]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        self.torn += 1
                        log.warning("store: skipping torn or invalid record %s:%d", path, lineno)
                        continue
                    self.records.setdefault(key, record)

    def get(self, key: str) -> dict | None:
        return self.records.get(key)

    def put(self, records: list[dict]) -> None:
        """Append records (each with a `key`) to this process's shard, durably."""
        if not records:
            return
        with self.shard.open("a", encoding="utf-8") as f:
            f.write("".join(json.dumps(r) + "\n" for r in records))
            f.flush()
            os.fsync(f.fileno())
        for r in records:
            self.records.setdefault(r["key"], r)

    def __len__(self) -> int:
        return len(self.records)
