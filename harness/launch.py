"""The run (or sweep) directory, checked and made before Hydra writes anything into it.

Hydra creates `hydra.run.dir` (or `hydra.sweep.dir`) and writes `.hydra/` and `run.log` into it
before the task function runs. `CheckDirs` (a Hydra callback, first in `hydra.callbacks` of
conf/config.yaml) runs earlier, in `on_run_start` / `on_multirun_start`, and
- checks the HARNESS_* environment first (an empty HARNESS_RUNS_DIR counts as unset);
- resolves the directory once and pins it in the config, made absolute by the one rule for
  relative paths (harness.paths: from the project root);
- refuses an empty value, a path that is not a directory (a file, a FIFO, a device, a symlink
  loop), a name too long, a directory below a file, a read-only one, a directory that exists,
  holds files and was not made by the harness (no `.harness` marker), and one held by a live run;
- otherwise makes the directory and its marker, so Hydra finds it in place.
A refusal is one line (exit status 2) and writes nothing anywhere.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from harness.environment import check_environment
from harness.errors import ConfigError, PathError, one_line
from harness.paths import absolute, what_is
from harness.rundir import LOCK, MARKER, holder


def made_by_harness(path: Path) -> bool:
    return (path / MARKER).exists() or (path / LOCK).exists()  # .lock: runs before the marker


def prepare(which: str, key: str, value: Any) -> Path:
    """The directory `value` of config key `key`, checked and made (with its marker)."""
    text = "" if value is None else str(value)
    if not text.strip():
        raise PathError(
            which, text, f"{key} is empty; it would make the launch directory the {which} "
            "directory (leave it out for the default, or give a directory)"
        )  # fmt: skip
    path = Path(absolute(text) or text)
    if any(len(part.encode()) > 255 for part in path.parts) or len(str(path).encode()) > 4000:
        short = f"{str(path)[:60]}...({len(str(path))} characters)"
        raise PathError(which, short, "the name is too long for the file system")
    kind = what_is(path)
    if kind is not None and kind != "a directory":
        raise PathError(which, path, f"it is {kind}, not a directory ({key})")
    for parent in path.parents:
        parent_kind = what_is(parent)
        if parent_kind is not None:
            if parent_kind != "a directory":
                raise PathError(which, path, f"{parent} is {parent_kind}, not a directory")
            break
    if kind == "a directory":
        if any(path.iterdir()) and not made_by_harness(path):
            raise PathError(
                which, path, f"it exists, holds files and was not made by the harness (no "
                f"{MARKER} in it); give the {which} its own directory ({key}=...)"
            )  # fmt: skip
        live = holder(path)
        if live is not None:
            raise PathError(
                which, path, f"another live run ({live}) is writing into it; give this run its "
                f"own directory ({key}=...) or wait for that one to end"
            )  # fmt: skip
    try:
        path.mkdir(parents=True, exist_ok=True)
        (path / MARKER).touch()
    except OSError as e:
        raise PathError.from_os(which, path, e, "creating it") from None
    return path


def pin(config: DictConfig, key: str, which: str) -> None:
    """Resolve `key` once, check and make the directory, and put its absolute path in place."""
    try:
        value = OmegaConf.select(config, key, throw_on_missing=True)
    except Exception as e:  # an interpolation that cannot be resolved
        raise ConfigError(f"{key}: {str(e).splitlines()[0]}") from None
    path = prepare(which, key, value)
    node, leaf = key.rsplit(".", 1)
    with read_write(config), open_dict(config):
        OmegaConf.select(config, node)[leaf] = str(path)


def _check(config: DictConfig, key: str, which: str) -> None:
    try:
        check_environment()
        pin(config, key, which)
    except ConfigError as e:  # Hydra turns a callback's exceptions into warnings
        print(one_line(e), file=sys.stderr)
        sys.exit(2)
    except Exception as e:  # never a warning and a run in an unchecked directory
        print(f"error: {key}: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(2)


class CheckDirs(Callback):
    """Checks and makes the run or sweep directory before Hydra writes into it."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check(config, "hydra.run.dir", "run")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check(config, "hydra.sweep.dir", "sweep")
