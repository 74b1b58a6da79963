"""Where things live: the `paths` config group's resolvers (conf/paths/default.yaml).

Every path in `paths` is absolute, resolved from the project root (`HARNESS_ROOT` or this
checkout) or from the environment, so a run launched from any directory finds its data, store
and cache; a configured data directory that does not exist stops the run with its name.
"""

from __future__ import annotations

import os
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
    return str((p if p.is_absolute() else Path(root()) / p).resolve())


def existing(path: str) -> str | None:
    """`path` (absolute) when it exists, else null: the default data dir is optional."""
    p = absolute(path)
    return p if p is not None and Path(p).exists() else None


OmegaConf.register_new_resolver("harness_root", root, replace=True)
OmegaConf.register_new_resolver("harness_abs", absolute, replace=True)
OmegaConf.register_new_resolver("harness_existing", existing, replace=True)
