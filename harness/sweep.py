"""Multirun sweeps: one table across points (a point's name and directory: harness.multirun).

After the sweep, `SweepSummary` (a Hydra callback, `hydra.callbacks` in conf/config.yaml) reads
every point's metrics.json and prints one table across points, writes it to
`<sweep dir>/summary.txt` and logs it, and gives the sweep's W&B group a summary run.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from harness.cluster import check_launcher, check_tensor_parallel, gres_gpus
from harness.errors import ConfigError
from harness.summary import read_summaries
from harness.tables import format_table
from harness.tracking import log_sweep_summary, results_rows

log = logging.getLogger(__name__)


def points(sweep_dir: Path) -> list[tuple[str, dict]]:
    """(point directory name, metrics.json) of every finished point, in job order."""
    found = [(p.parent.name, p) for p in Path(sweep_dir).glob("*/metrics.json")]
    order = lambda x: (int(x[0].split("_")[0]) if x[0].split("_")[0].isdigit() else 1e9, x[0])  # noqa: E731
    return [(name, json.loads(p.read_text())) for name, p in sorted(found, key=order)]


def cross_point_rows(sweep_dir: Path) -> list[dict]:
    """One row per (point, configuration): the point's name, then the results-table row."""
    rows = []
    for name, metrics in points(sweep_dir):
        if "configurations" not in metrics:  # a propose-only phase has no results
            continue
        _, summaries = read_summaries(metrics)
        rows += [{"point": name} | row for row in results_rows(summaries)]
    return rows


def cross_point_table(rows: list[dict]) -> str:
    if not rows:
        return "(no finished points)"
    headers = [
        "point",
        "configuration",
        "score",
        "ci_low",
        "ci_high",
        "proposal_score",
        "calls",
        "generated_tokens",
        "seconds",
    ]
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    return format_table(headers, [[fmt(r.get(h, "")) for h in headers] for r in rows])


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
        except ConfigError as e:  # Hydra turns a callback's exceptions into warnings
            print(f"config error: {e}", file=sys.stderr)
            sys.exit(2)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if OmegaConf.select(config, "dry_run", default=False):
            return  # each point printed its plan; nothing ran
        sweep_dir = Path(str(config.hydra.sweep.dir))
        rows = cross_point_rows(sweep_dir)
        text = cross_point_table(rows)
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
