"""Multirun sweeps: one table across points (a point's name and directory: harness.multirun).

After the sweep, `SweepSummary` (a Hydra callback, `hydra.callbacks` in conf/config.yaml) reads
every point's metrics.json and prints one table across points (and the points that failed, from
their failed.txt; exit status 1 then), writes it to `<sweep dir>/summary.txt` and logs it, and
gives the sweep's W&B group a summary run. Before the sweep, every point is composed and checked
(`check_points`): an invalid point stops the sweep before any point runs, naming each invalid one.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from harness.cluster import check_launcher, check_tensor_parallel, gres_gpus
from harness.environment import check_environment
from harness.errors import ConfigError
from harness.multirun import failed_points
from harness.plan import checked
from harness.summary import GENERATE_S, LOAD_S, MADE, read_summaries
from harness.tables import format_table
from harness.tracking import log_sweep_summary, results_rows

log = logging.getLogger(__name__)


def points(sweep_dir: Path) -> list[tuple[str, dict]]:
    """(point directory name, metrics.json) of every finished point, in job order."""
    found = [(p.parent.name, p) for p in Path(sweep_dir).glob("*/metrics.json")]
    order = lambda x: (int(x[0].split("_")[0]) if x[0].split("_")[0].isdigit() else 1e9, x[0])  # noqa: E731
    return [(name, json.loads(p.read_text())) for name, p in sorted(found, key=order)]


def cross_point_rows(sweep_dir: Path) -> list[dict]:
    """One row per (point, configuration): the point's name, its benchmark and the work the
    point did (`made`: generations it made; `seconds`: its model loads and generation, 0 only
    when it made nothing), then the results-table row (whose per-configuration `seconds` is
    renamed `configuration_seconds`: 0 for generations served from the store)."""
    rows = []
    for name, metrics in points(sweep_dir):
        if "configurations" not in metrics:  # a propose-only phase has no results
            continue
        _, summaries = read_summaries(metrics)
        point = {
            "point": name,
            "benchmark": metrics.get("benchmark"),
            "made": metrics.get(MADE, 0),
            "seconds": metrics.get(LOAD_S, 0.0) + metrics.get(GENERATE_S, 0.0),
        }
        for row in results_rows(summaries):
            row["configuration_seconds"] = row.pop("seconds")
            rows.append(point | row)
    return rows


HEADERS = [
    "point",
    "benchmark",
    "configuration",
    "score",
    "ci_low",
    "ci_high",
    "proposal_score",
    "calls",
    "generated_tokens",
    "made",
    "seconds",
]
NOTE = (
    "made: generations the point made; seconds: its model loads and generation "
    "(0 only when it made nothing: everything came from the store)"
)


def cross_point_table(rows: list[dict]) -> str:
    if not rows:
        return "(no finished points)"
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    cells = [[fmt(r.get(h, "")) for h in HEADERS] for r in rows]
    for row, r in zip(cells, rows, strict=True):
        if r["made"] == 0:
            row[-1] = "0 (store)"
    return format_table(HEADERS, cells) + "\n" + NOTE


def sweep_points(config: DictConfig) -> tuple[list[list[str]], set[str]]:
    """The override lists of every point of a basic-sweeper multirun (as Hydra expands them),
    and the swept keys."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not str(OmegaConf.select(config, "hydra.sweeper._target_", default="")).endswith(
        "BasicSweeper"
    ):
        return [], set()
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    args = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
    loader = GlobalHydra.instance().config_loader()
    parsed = OverridesParser.create(config_loader=loader).parse_overrides(args)
    swept = {o.key_or_group for o in parsed if o.is_sweep_override()}
    return [
        list(point) for batch in BasicSweeper.split_arguments(parsed, None) for point in batch
    ], swept


def check_points(config: DictConfig) -> None:
    """Every point composed and checked (harness.plan.checked) before the first runs; one line
    naming each invalid point (ConfigError)."""
    from hydra.core.global_hydra import GlobalHydra

    check_environment()
    points, swept = sweep_points(config)
    if not GlobalHydra.instance().is_initialized() or len(points) < 2:
        return  # one point: checked when it runs
    loader = GlobalHydra.instance().config_loader()
    bad = []
    for num, overrides in enumerate(points):
        try:
            cfg = loader.load_sweep_config(config, overrides)
            with open_dict(cfg):
                del cfg["hydra"]
            checked(cfg)
        except ConfigError as e:
            name = ",".join(o for o in overrides if o.split("=", 1)[0].lstrip("+~") in swept)
            bad.append(f"point {num} ({name}): {e}")
    if bad:
        raise ConfigError(
            f"{len(bad)} of {len(points)} sweep points are invalid, none was run: " + "; ".join(bad)
        )


def dry_run_end(config: DictConfig, failed: list[tuple[str, str]]) -> None:
    """A dry run's sweep: exit 2 when a point cannot run (its line, printed by the point here
    or in its job log on SLURM, repeated then)."""
    if not failed:
        return
    target = str(OmegaConf.select(config, "hydra.launcher._target_", default=""))
    here = target.endswith("BasicLauncher")
    for name, line in [] if here else failed:
        print(f"failed: point {name}: {line}", file=sys.stderr)
    sys.exit(2)


class SweepSummary(Callback):
    """After a multirun: one table across points, printed, written, logged and sent to W&B.

    Before it, on SLURM: `hydra.launcher.gres` must match engine.kwargs.tensor_parallel_size,
    and sbatch must accept the launcher's jobs (harness.cluster.check_launcher).
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        gres = OmegaConf.select(config, "hydra.launcher.gres", default=None)
        tp = OmegaConf.select(config, "engine.kwargs.tensor_parallel_size", default=1) or 1
        target = str(OmegaConf.select(config, "hydra.launcher._target_", default=""))
        try:
            check_tensor_parallel(int(tp), gres_gpus(gres), f"hydra.launcher.gres={gres}")
            if target.endswith("SlurmLauncher"):  # sbatch's refusal now, not a traceback later
                check_launcher(OmegaConf.to_container(config.hydra.launcher, resolve=True))
            check_points(config)  # every point, before the first runs
        except ConfigError as e:  # Hydra turns a callback's exceptions into warnings
            print(f"config error: {e}", file=sys.stderr)
            sys.exit(2)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if OmegaConf.select(config, "dry_run", default=False):
            dry_run_end(config, failed_points(sweep_dir))  # each point printed its plan
            return
        rows = cross_point_rows(sweep_dir)
        failed = failed_points(sweep_dir)
        text = cross_point_table(rows) + "".join(
            f"\nfailed: point {name}: {line}" for name, line in failed
        )
        (sweep_dir / "summary.txt").write_text(text + "\n", encoding="utf-8")
        print(f"\nsweep {sweep_dir}: {len(rows)} rows from {len(points(sweep_dir))} points\n")
        print(text)
        log.info(
            "sweep summary of %d points in %s", len(points(sweep_dir)), sweep_dir / "summary.txt"
        )
        mode = OmegaConf.select(config, "logger.mode", default="disabled")
        if rows and mode != "disabled":
            try:
                log_sweep_summary(config, sweep_dir, rows)
            except Exception as e:  # noqa: BLE001 - the points' own records are the result
                log.warning("W&B sweep summary run not written: %r", e)
        if failed:
            print(f"{len(failed)} sweep points failed (above; their failed.txt)", file=sys.stderr)
            sys.exit(1)
