"""File-system faults for tests: a small tmpfs (disk full), remounted read-only; store snapshots."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tmpfs(path: Path, size: str = "64k") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` (needs root; the test is skipped otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs (disk full, read-only file system) needs root")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount_read_only(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every shard's bytes (a store is append-only: later contents must start with these)."""
    return {p.name: p.read_bytes() for p in sorted(root.glob("*.jsonl"))}


def assert_kept(before: dict[str, bytes], root: Path) -> None:
    """Every line stored before is still there, unchanged."""
    after = snapshot(root)
    for name, data in before.items():
        assert after.get(name, b"").startswith(data), f"{name} lost or changed records"
