"""The HARNESS_* environment knobs, read and checked in one place.

HARNESS_STORE_DIR    the generation store (default of `store_dir`), a directory
HARNESS_DATA_DIR     local benchmark data (default of `benchmark.data_dir`), an existing directory
HARNESS_CACHE_DIR    prepared models (harness.models; default ~/.cache/harness), a directory
HARNESS_PROGRESS_S   seconds between progress log lines off a terminal (default 30), >= 0
HARNESS_RUNS_DIR     run directories and sweeps (default <project root>/runs), a directory

Relative directories are taken from the project root (harness.paths), here as in the config.

An empty or blank value counts as unset: `check_environment()` removes it from `os.environ`, so
the config's defaults apply (`${oc.env:HARNESS_STORE_DIR,runs/store}` would otherwise give ''
and put the store in the current directory). Config interpolations are resolved lazily, so
calling it at the start of an entry point, before the config is converted, is enough. A
nonsense value is a `ConfigError` naming the variable; an unknown HARNESS_* name (a typo of a
known one, say) is warned about.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
from collections.abc import MutableMapping
from pathlib import Path

from harness.errors import ConfigError
from harness.paths import absolute, root, what_is

log = logging.getLogger(__name__)

KNOBS = {
    "HARNESS_STORE_DIR": "a directory for the generation store",
    "HARNESS_DATA_DIR": "an existing directory of benchmark data",
    "HARNESS_CACHE_DIR": "a directory for prepared models",
    "HARNESS_PROGRESS_S": "a number of seconds >= 0",
    "HARNESS_RUNS_DIR": "a directory for run directories (conf/paths)",
}
# known names checked elsewhere (SLURM scripts, tests), so not reported as unknown
OTHER_KNOWN = (
    "HARNESS_SCRATCH",
    "HARNESS_SETUP",
    "HARNESS_SERVE_URLS",
    "HARNESS_ROOT",
    "HARNESS_FAULT_AT",
)
DEFAULT_PROGRESS_S = 30.0


def knob(name: str, environ: MutableMapping[str, str] | None = None) -> str | None:
    """The value of a knob, None when unset, empty or blank."""
    value = (os.environ if environ is None else environ).get(name)
    return value if value is not None and value.strip() else None


def progress_seconds(environ: MutableMapping[str, str] | None = None) -> float:
    """HARNESS_PROGRESS_S as seconds (default 30); `ConfigError` unless a finite number >= 0."""
    value = knob("HARNESS_PROGRESS_S", environ)
    if value is None:
        return DEFAULT_PROGRESS_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(
            f"HARNESS_PROGRESS_S={value!r} must be a number of seconds >= 0 (unset: 30)"
        )
    return seconds


def _directory_problem(path: Path, must_exist: bool) -> str | None:
    kind = what_is(path)
    if kind is not None:
        return None if kind == "a directory" else f"is {kind}, not a directory"
    if must_exist:
        return "does not exist"
    for parent in path.parents:  # can it be created?
        kind = what_is(parent)
        if kind is not None:
            return None if kind == "a directory" else f"cannot be created: {parent} is {kind}"
    return None


def check_environment(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Check every HARNESS_* variable; drop empty ones; return the set knobs by name.

    Raises `ConfigError` naming the first variable with a nonsense value.
    """
    environ = os.environ if environ is None else environ
    for name in sorted(k for k in environ if k.startswith("HARNESS_")):
        if name not in KNOBS and name not in OTHER_KNOWN:
            close = difflib.get_close_matches(name, KNOBS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            log.warning("unknown environment variable %s ignored%s", name, hint)
        elif not environ[name].strip():
            log.info("%s is empty: treated as unset", name)
            del environ[name]
    found = {name: environ[name] for name in KNOBS if name in environ}
    for name, value in found.items():
        if value != value.strip():
            raise ConfigError(f"{name}={value!r} has leading or trailing spaces")
    progress_seconds(environ)
    for name, must_exist in [
        ("HARNESS_STORE_DIR", False),
        ("HARNESS_DATA_DIR", True),
        ("HARNESS_CACHE_DIR", False),
        ("HARNESS_RUNS_DIR", False),
    ]:
        if name in found:
            # relative values are taken from the project root, as the config uses them
            problem = _directory_problem(Path(absolute(found[name]) or ""), must_exist)
            if problem:
                where = "" if Path(found[name]).expanduser().is_absolute() else (
                    f" (relative paths are from the project root {root()})"
                )  # fmt: skip
                raise ConfigError(
                    f"{name}={found[name]!r} {problem}; it must be {KNOBS[name]}{where}"
                )
    return found
