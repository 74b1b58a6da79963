"""Where things live: the `paths` config group's resolvers (conf/paths/default.yaml).

Every path in `paths` is absolute, resolved from the project root (`HARNESS_ROOT` or this
checkout) or from the environment, so a run launched from any directory finds its data, store
and cache; a configured data directory that does not exist stops the run with its name.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parent.parent


def root() -> str:
    """The project root: `HARNESS_ROOT`, else the checkout holding this package."""
    return str(Path(os.environ.get("HARNESS_ROOT") or ROOT).expanduser().resolve())


def absolute(path: str | None) -> str | None:
    """`path` made absolute against the project root (null stays null: the hub)."""
    if path in (None, "", "null"):
        return None
    p = Path(str(path)).expanduser()
    p = p if p.is_absolute() else Path(root()) / p
    try:
        return str(p.resolve())
    except (OSError, RuntimeError):  # a symlink loop, a name too long: the checks name them
        return os.path.abspath(p)


def existing(path: str) -> str | None:
    """`path` (absolute) when it exists, else null: the default data dir is optional."""
    p = absolute(path)
    return p if p is not None and Path(p).exists() else None


KINDS = [
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISREG, "a file"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
]


def what_is(path: str | Path) -> str | None:
    """What is at `path`, in words ("a directory", "a FIFO (named pipe)", "a symlink loop",
    "a broken symlink", ...); None when nothing is there."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symlink loop"
        if e.errno == errno.ENAMETOOLONG:
            return "a name too long for the file system"
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return "a broken symlink" if os.path.islink(path) else None
        return f"not readable ({e.strerror})"
    return next((name for test, name in KINDS if test(mode)), "a special file")


OmegaConf.register_new_resolver("harness_root", root, replace=True)
OmegaConf.register_new_resolver("harness_abs", absolute, replace=True)
OmegaConf.register_new_resolver("harness_existing", existing, replace=True)
