"""Errors a user can cause: printed as one line (exit status 2), never as a traceback."""

from __future__ import annotations

import errno


class ConfigError(ValueError):
    """A configuration value that cannot be run."""


def one_line(e: ConfigError) -> str:
    """The one line printed for a user's error (the traceback goes to the log only)."""
    import logging

    logging.getLogger("harness").debug("error details", exc_info=e)
    return f"{'error' if isinstance(e, PathError | ResourceError) else 'config error'}: {e}"


class DataError(ConfigError):
    """Benchmark data that cannot be found or read (names the paths tried)."""


class ResourceError(ConfigError):
    """The machine lacks what a model needs (device memory held by another process)."""


class PathError(ConfigError):
    """A directory the harness needs (`which`: store, run or cache) that it cannot use."""

    def __init__(self, which: str, path: object, reason: str):
        self.which, self.path, self.reason = which, str(path), reason
        super().__init__(f"{which} directory {self.path!r}: {reason}")

    @classmethod
    def from_os(cls, which: str, path: object, e: OSError, doing: str) -> PathError:
        """From an OSError met while `doing` something ("writing a shard"), with a plain reason."""
        reason = {
            errno.ENOSPC: "the disk is full",
            errno.EDQUOT: "the disk quota is exceeded",
            errno.EROFS: "the file system is read-only",
            errno.EACCES: "permission denied",
            errno.EPERM: "permission denied",
            errno.ENOTDIR: "a path component is a file, not a directory",
            errno.EEXIST: "a file is in the way",
        }.get(e.errno, e.strerror or str(e))
        where = f" ({e.filename})" if e.filename and str(e.filename) != str(path) else ""
        return cls(which, path, f"{reason} while {doing}{where}")
