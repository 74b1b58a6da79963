"""The run directory: the record of a run; W&B only mirrors it.

config.yaml    the resolved, typed configuration
records.jsonl  one record per (configuration, item): proposals, rounds, final answer, scores
metrics.json   per-configuration metrics, per-stage timings, store counts, peak memory
run.log        the log (written by Hydra's job logging)
wandb/         the offline W&B run, when logger.mode=offline
.lock          flock'ed by the live run writing here (holder's host and pid inside)
.harness       marks a directory the harness made (harness.launch refuses other non-empty ones)
Every generation itself lives in the shared store (harness.store), written as each stage ends.

Hydra names a run directory runs/<date>/<H-M-S>_<method>_<model>_<tag>, where `<tag>` is the
`${run_tag:}` resolver registered here: 4 random hex digits drawn once per process (cached in
the config like `${now:}`), so two runs started in the same second get two directories. A run
directory held by another live run is refused (`PathError`); a requeued or resumed run, whose
earlier attempt is dead, continues its directory. Files are replaced atomically: a crash or a
full disk leaves the previous version (or none) and no temporary file.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import OmegaConf

from harness import locks
from harness.errors import PathError
from harness.records import Record

if TYPE_CHECKING:
    from harness.config import RunConfig

RUN_TAG = secrets.token_hex(2)
OmegaConf.register_new_resolver("run_tag", lambda: RUN_TAG, use_cache=True, replace=True)

MARKER = ".harness"  # in every run and sweep directory the harness makes (harness.launch)
LOCK = ".lock"
_held: dict[Path, int] = {}  # run directory -> fd of its flock'ed .lock, for this process


class RunDir:
    """A run directory, created if needed and locked for this process (`PathError` if not)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise PathError("run", self.path, "it is a file, not a directory")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            (self.path / MARKER).touch()
        except OSError as e:
            raise PathError.from_os("run", self.path, e, "creating it") from e
        self._lock()

    def _lock(self) -> None:
        """flock `.lock` for the life of this process; refuse if another live run holds it."""
        key = self.path.resolve()
        if key in _held:
            return
        lock = self.path / LOCK
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise PathError.from_os("run", self.path, e, "creating its lock file") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise PathError(
                "run",
                self.path,
                f"another live run ({holder}) is writing into it; give this run its own "
                "directory (hydra.run.dir=...) or wait for that one to end",
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"host {socket.gethostname()} pid {os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # the lock holds without the note
        _held[key] = locks.hold(fd)

    def write_config(self, run: RunConfig) -> None:
        self._atomic("config.yaml", OmegaConf.to_yaml(OmegaConf.structured(run)))

    def write_records(self, records: list[Record]) -> None:
        # streamed line by line: a paper-size study's records are over a GiB as one string
        self._atomic("records.jsonl", (json.dumps(r.to_json()) + "\n" for r in records))

    def write_metrics(self, metrics: dict) -> None:
        self._atomic("metrics.json", json.dumps(metrics, indent=2) + "\n")

    def _atomic(self, name: str, text: str | Iterable[str]) -> None:
        """Write `name` (a text, or its pieces in order) through a temporary file and a
        rename; no temporary file survives."""
        tmp = self.path / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = None
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                if isinstance(text, str):
                    f.write(text)
                else:
                    f.writelines(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path / name)
        except OSError as e:
            if fd is not None:
                try:
                    tmp.unlink(missing_ok=True)
                except OSError:
                    pass
            raise PathError.from_os("run", self.path, e, f"writing {name}") from e


def holder(path: Path) -> str | None:
    """Who holds a run directory's lock (its note, or 'another process'); None when free."""
    try:
        fd = os.open(path / LOCK, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
    finally:
        os.close(fd)  # drops the probe's own shared lock
    return None


def release(path: str | Path) -> None:
    """Unlock a run directory this process holds (tests; a process's exit does it too)."""
    fd = _held.pop(Path(path).resolve(), None)
    if fd is not None:
        locks.close(fd)
