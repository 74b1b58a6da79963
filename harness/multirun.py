"""A point of a Hydra multirun: its swept overrides, its directory name and its W&B group.

A point is named by the overrides that vary across the sweep (the sweep preset's
`hydra.sweeper.params` and the command line's comma lists), e.g. `3_method.k=6,method=self_moa`:
that name is the point's subdirectory (`hydra.sweep.subdir` in conf/config.yaml, through the
`harness_point_dir` resolver registered here) and the suffix of its W&B run name, so points
differing only in temperature differ. Every point of one sweep shares a W&B group.

A point that fails at run time (`point_failed`) prints one line and leaves it in its directory's
`failed.txt` (the traceback of an unexpected error goes to its run.log); the sweep goes on, and
its summary (harness.sweep) lists the failed points.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from harness.errors import ConfigError, one_line

log = logging.getLogger(__name__)
FAILED = "failed.txt"  # in a point's directory: why it failed

MAX_NAME = 120  # characters of overrides in a point's directory name


def _sweep_keys(overrides: list[str]) -> set[str]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return {o.key_or_group for o in parsed if o.is_sweep_override()}


def varying_keys(hydra_cfg: Any) -> set[str]:
    """Keys swept in this multirun: the sweeper's params and the command line's sweeps."""
    params = hydra_cfg.sweeper.get("params") or {}
    keys = _sweep_keys([f"{k}={v}" for k, v in params.items()])
    saved = Path(str(hydra_cfg.sweep.dir)) / "multirun.yaml"  # the command line, unexpanded
    if saved.is_file():
        keys |= _sweep_keys(list(OmegaConf.load(saved).hydra.overrides.task))
    return keys


def point_overrides(hydra_cfg: Any) -> list[str]:
    """This point's values of the swept keys, as overrides (`method.k=6`), sorted by key."""
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return []
    keys = varying_keys(hydra_cfg)
    mine = [o for o in hydra_cfg.overrides.task if o.split("=", 1)[0].lstrip("+~") in keys]
    return sorted(mine)


def point_label() -> str:
    """The swept overrides of the current Hydra job, `a=1,b=2`; empty outside a multirun."""
    if not HydraConfig.initialized():
        return ""
    return ",".join(point_overrides(HydraConfig.get()))


def point_dir(num: Any) -> str:
    """Subdirectory of a sweep point: its number and swept overrides, safe as a file name."""
    label = re.sub(r"[^A-Za-z0-9._=,+-]", "_", point_label())[:MAX_NAME]
    return f"{num}_{label}" if label else str(num)


OmegaConf.register_new_resolver("harness_point_dir", point_dir, replace=True)


def sweep_group(hydra_cfg: Any) -> str | None:
    """The W&B group of a multirun: the sweep preset (if any) and the sweep directory's name."""
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    sweep_dir = Path(hydra_cfg.sweep.dir)
    preset = hydra_cfg.runtime.choices.get("sweep") or "sweep"
    return f"{preset}-{sweep_dir.parent.name}_{sweep_dir.name}"


def point_failed(hydra_cfg: Any, e: Exception) -> bool:
    """In a multirun: report point failure `e` in one line and in the point's `failed.txt`, and
    return True (the sweep goes on). Outside a multirun: False."""
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return False
    if isinstance(e, ConfigError):
        line = one_line(e)
    else:
        log.debug("the point's error", exc_info=e)  # run.log keeps the traceback
        line = f"error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    out = Path(str(hydra_cfg.runtime.output_dir))
    print(f"sweep point {out.name} failed: {line}", file=sys.stderr)
    log.warning("sweep point failed: %s", line)
    try:
        (out / FAILED).write_text(line + "\n", encoding="utf-8")
    except OSError as err:
        log.warning("could not write %s: %s", out / FAILED, err)
    return True


def failed_points(sweep_dir: Path) -> list[tuple[str, str]]:
    """(point directory name, its failure line) of every failed point of a sweep."""
    found = []
    for p in sorted(Path(sweep_dir).glob(f"*/{FAILED}")):
        done = p.parent / "metrics.json"
        if done.exists() and done.stat().st_mtime >= p.stat().st_mtime:
            continue  # failed before, finished since (the sweep was run again)
        found.append((p.parent.name, p.read_text(encoding="utf-8", errors="replace").strip()))
    return found
