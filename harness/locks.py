"""The flock'ed descriptors this process holds (run directory, store streams).

A child forked meanwhile (vLLM's engine process) inherits a copy of each descriptor, and with it
the lock, which would then outlive this process or its release: children close them at once.
"""

from __future__ import annotations

import os

HELD: set[int] = set()


def hold(fd: int) -> int:
    HELD.add(fd)
    return fd


def close(fd: int) -> None:
    if fd in HELD:
        HELD.discard(fd)
        os.close(fd)


def _close_in_child() -> None:
    for fd in list(HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    HELD.clear()


os.register_at_fork(after_in_child=_close_in_child)
