"""Experiment tracking: W&B (offline by default) or a do-nothing stand-in, so callers never branch.

Summary keys are the same in every run (named once, in harness.summary): `<benchmark>/<metric>`
(acc, win_rate or score), `cost/<x>`, `time/<stage>_s`, for the run's main configuration; the
baseline's go under `baseline/`, a study's under `<label>/`. Offline runs live in
`<run_dir>/wandb/` and are uploaded later with `wandb sync <run_dir>/wandb/offline-run-*`.

The run id is derived from the run directory (`run_id`: a hash of the config it ran, and of the
sweep's command line for a sweep point), so a requeued or resumed job, a rerun of the same command
and a rerun of the same sweep continue their W&B runs (`resume="allow"`; offline, each attempt's
`offline-run-*` folder syncs into the same run) instead of adding duplicates. Points of one
sweep share a W&B group (`logger.group`, set from the sweep directory by `harness.run`; a rerun
moves its runs to the new sweep's group). A failed run finishes with its exit code (W&B marks it
failed) and a preempted one is marked preempting, so no run is left running. At the end the run
directory (config, records, metrics, log, plots, `.hydra/`) is logged as an artifact and its
plots as images.

The dashboard of a run: `results` (one row per configuration: score, CI, proposal and oracle
scores, calls, tokens, seconds, truncations, outcomes, events; `reference` marks the single-model
rows), native
charts drawn from it (`charts/score`: bar of score per configuration, the reference rows included;
`charts/score_vs_tokens`: scatter of score against generated tokens), `items` (every record of
a study up to ITEM_TABLE_ROWS rows; above that, every configuration on a fixed sample of items,
`items_table/rows` of `items_table/of` in the summary; records.jsonl has all), a
`samples/<configuration>` table per configuration (harness.dashboard), the summary. The config
holds the resolved run (models included), the command line's `overrides` and the `command` that
reruns the run alone; the run directory's artifact holds `.hydra/` too.
Runs carry `job_type` (study, agreement, analysis, sweep), tags and notes; a sweep point's name
ends with its swept overrides (harness.multirun). Read an offline run back with W&B's own reader:
`wandb leet inspect --summary --json <run_dir>/wandb/offline-run-*` (scripts/wandb_offline.py
prints what a dashboard holds). W&B stages artifacts under WANDB_DATA_DIR (default here:
`<paths.cache>/wandb`, not the home directory).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.config import LoggerConfig, RunConfig
from harness.dashboard import (  # noqa: F401 - the rows of the tables and their reader, re-exported
    ITEM_COLUMNS,
    ITEM_TABLE_ROWS,
    items_sample,
    offline_runs,
    read_offline,
    results_rows,
    sample_rows,
)
from harness.multirun import point_label, sweep_group
from harness.records import Record
from harness.summary import StudyMetrics

log = logging.getLogger(__name__)

JOB_TYPES = ("study", "agreement", "analysis", "sweep")


def as_table(wandb, rows: list[dict]):
    """A wandb.Table of dict rows (columns: the union of keys, in first-seen order)."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in rows])


def result_charts(wandb, table, title: str) -> dict:
    """Native W&B charts of a results table: score per configuration, score vs tokens."""
    return {
        "charts/score": wandb.plot.bar(
            table, "configuration", "score", title=f"{title} per configuration (single = reference)"
        ),
        "charts/score_vs_tokens": wandb.plot.scatter(
            table, "generated_tokens", "score", title=f"{title} vs generated tokens"
        ),
    }


def default_data_dir() -> None:
    """Keep W&B's artifact staging off the home directory unless WANDB_DATA_DIR is set.

    Default `<paths.cache>/wandb` (harness.run exports paths.cache as HARNESS_CACHE_DIR).
    """
    if not os.environ.get("WANDB_DATA_DIR"):
        cache = os.environ.get("HARNESS_CACHE_DIR") or "~/.cache/harness"
        os.environ["WANDB_DATA_DIR"] = str(Path(cache).expanduser() / "wandb")


def init_run(
    logger: LoggerConfig,
    *,
    run_dir: str,
    name: str,
    job_type: str,
    notes: str = "",
    tags: list[str] | tuple[str, ...] = (),
    config: dict | None = None,
    group: str | None = None,
    run_id_: str | None = None,
):
    """`wandb.init` with the harness's conventions (shared by study, agreement and analysis)."""
    import wandb

    if job_type not in JOB_TYPES:
        raise ValueError(f"job_type={job_type!r}; allowed: {', '.join(JOB_TYPES)}")
    default_data_dir()
    return wandb.init(
        project=logger.project,
        entity=logger.entity,
        group=group if group is not None else logger.group,
        name=name,
        job_type=job_type,
        notes=notes or None,
        tags=list(dict.fromkeys([*logger.tags, *tags])),
        config=config,
        dir=run_dir,
        mode=logger.mode,
        id=run_id_ or run_id(run_dir),
        resume="allow",
        # no per-run summary block on the console; the sync command is logged by the caller
        settings=wandb.Settings(quiet=True),
    )


def run_name(base: str) -> str:
    """`base`, plus the swept overrides when this is a point of a multirun."""
    label = point_label()
    return f"{base}[{label}]" if label else base


def run_notes(run: RunConfig, job_type: str) -> str:
    confs = run.configurations or [run.method]
    what = ", ".join(c.label or c.name for c in confs[:8]) + (" ..." if len(confs) > 8 else "")
    limit = run.benchmark.limit if run.benchmark.limit is not None else "all"
    notes = f"{job_type}: {what} on {run.benchmark.name} ({limit} items), model {run.model.name}"
    if point := point_label():
        notes += f"; sweep point {point}"
    return notes


def run_tags(run: RunConfig) -> list[str]:
    confs = run.configurations or [run.method]
    return [run.benchmark.name, run.model.name, *sorted({c.name for c in confs})]


def run_command() -> dict:
    """The command line's overrides of this (Hydra) job, and the command that runs it alone."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {"overrides": [], "command": ""}
    overrides = list(HydraConfig.get().overrides.task)
    return {"overrides": overrides, "command": " ".join(["python -m harness.run", *overrides])}


class NullTracker:
    def log_study(self, metrics: StudyMetrics, records: list[Record]) -> None:
        pass

    def finish(self, exit_code: int = 0, preempted: bool = False) -> None:
        pass


WHERE = ("run_dir", "paths", "store_dir", "logger")  # where a run lives and logs, not what it does


def run_identity(run_dir: str | Path) -> list | None:
    """What a run directory ran, the same for every run of the same command: its config.yaml
    without WHERE, and for a point of a sweep (or the sweep directory itself) the sweep's command
    line (Hydra's multirun.yaml). None when the directory holds neither."""
    from omegaconf import OmegaConf

    root = Path(run_dir)
    if (root / "config.yaml").is_file():
        cfg = OmegaConf.to_container(OmegaConf.load(root / "config.yaml"))
        parts: list = [{k: v for k, v in cfg.items() if k not in WHERE}]
        sweep = root.parent / "multirun.yaml"
    elif (root / "multirun.yaml").is_file():
        parts, sweep = ["sweep summary"], root / "multirun.yaml"
    else:
        return None
    if sweep.is_file():
        parts.append(sorted(OmegaConf.load(sweep).hydra.overrides.task))
    return parts


def run_id(run_dir: str, job_type: str = "study") -> str:
    """A W&B run id derived from the run directory: a hash of what it ran (`run_identity`), so a
    requeued job, a rerun of the same command and a rerun of the same sweep all continue the same
    W&B run instead of adding one; a directory that holds no config: a hash of its path. Another
    job type on the same directory (an analysis of it) gets its own id, just as stable."""
    identity = run_identity(run_dir)
    key = json.dumps(identity, sort_keys=True) if identity else str(Path(run_dir).resolve())
    if job_type != "study":
        key = f"{job_type}:{key}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def run_files(run_dir: str) -> list[Path]:
    """The run directory's own files and Hydra's `.hydra/` (the composed config, the command
    line's overrides), not W&B's folder, submitit's internals or the lock."""
    root = Path(run_dir)
    skip = ("wandb", ".submitit")

    def kept(p: Path) -> bool:
        parts = p.relative_to(root).parts
        return parts[0] not in skip and (parts[0] == ".hydra" or not p.name.startswith("."))

    return sorted(p for p in root.rglob("*") if p.is_file() and kept(p))


class WandbTracker(NullTracker):
    def __init__(self, run: RunConfig, name: str, job_type: str = "study", main: str | None = None):
        import wandb

        self.wandb, self.main = wandb, main
        cfg = asdict(run) | run_command()  # the resolved models too (every model the run uses)
        self.run = init_run(
            run.logger,
            run_dir=run.run_dir,
            name=run_name(name),
            job_type=job_type,
            notes=run_notes(run, job_type),
            tags=run_tags(run),
            config=cfg,
        )
        self.run_dir = run.run_dir
        log.info("W&B %s run %s in %s", run.logger.mode, self.run.id, self.run.dir)
        if run.logger.mode == "offline":
            log.info("upload later with: wandb sync %s", Path(self.run.dir).parent)

    def log_study(self, metrics: StudyMetrics, records: list[Record]) -> None:
        """The summary (StudyMetrics.scalars), the results table and its charts, the items."""
        self.run.summary.update(metrics.scalars(self.main))
        table = as_table(self.wandb, results_rows(metrics.configurations))
        self.run.log({"results": table} | result_charts(self.wandb, table, metrics.keys.score))
        shown = items_sample(records)
        if len(shown) < len(records):
            log.info(
                "W&B items table: %d of %d rows (every configuration on a fixed sample of items; "
                "records.jsonl has them all)",
                len(shown),
                len(records),
            )
        self.run.summary.update({"items_table/rows": len(shown), "items_table/of": len(records)})
        table = self.wandb.Table(columns=ITEM_COLUMNS)
        for r in shown:
            proposals = "\n\n".join(f"[{p.sample_index}] {p.text}" for p in r.proposals)
            table.add_data(
                *[proposals if c == "proposals" else getattr(r, c) for c in ITEM_COLUMNS]
            )
        self.run.log({"items": table})
        self.log_samples(records)

    def log_samples(self, records: list[Record]) -> None:
        """A `samples/<configuration>` table per configuration (`sample_rows`)."""
        by_conf: dict[str, list[Record]] = {}
        for r in records:
            by_conf.setdefault(r.configuration, []).append(r)
        payload = {}
        for label, rs in by_conf.items():
            rows = sample_rows(rs)
            payload[f"samples/{label}"] = as_table(self.wandb, rows)
            self.run.summary[f"samples_table/{label}/rows"] = len(rows)
        self.run.log(payload)

    def finish(self, exit_code: int = 0, preempted: bool = False) -> None:
        try:
            if preempted:
                self.run.mark_preempting()
            elif exit_code == 0:
                self.log_run_dir()
            self.run.finish(exit_code=exit_code)
        except Exception as e:  # noqa: BLE001 - the run's own outcome must not be masked
            # under SLURM a preemption's SIGTERM reaches W&B's service process too, which then
            # quits at once; the next attempt resumes this run id, so nothing is lost
            log.warning("W&B run %s not closed cleanly: %r", self.run.id, e)

    def log_run_dir(self) -> None:
        files = run_files(self.run_dir)
        images = {f"plots/{p.stem}": self.wandb.Image(str(p)) for p in files if p.suffix == ".png"}
        if images:
            self.run.log(images)
        artifact = self.wandb.Artifact(f"run-{self.run.id}", type="run_dir")
        for p in files:
            artifact.add_file(str(p), name=str(p.relative_to(self.run_dir)))
        self.run.log_artifact(artifact)


def make_tracker(run: RunConfig, labels: list[str], benchmark: str) -> NullTracker:
    """The study's tracker. `labels`: its configurations, the run's method last (a run of one
    method: its figures under plain keys, the baselines' under `baseline/`)."""
    if run.logger.mode == "disabled":
        return NullTracker()
    main = None if run.configurations else labels[-1]
    what = f"study{len(labels)}" if main is None else main
    return WandbTracker(run, f"{what}-{run.model.name}-{benchmark}", "study", main)


def log_sweep_summary(config: Any, sweep_dir: Path, rows: list[dict]) -> None:
    """The sweep group's summary run: the cross-point table and its charts (job_type sweep)."""
    import wandb
    from omegaconf import OmegaConf

    logger = LoggerConfig(**OmegaConf.to_container(config.logger, resolve=True))
    group = logger.group or sweep_group(config.hydra)
    wrun = init_run(
        logger,
        run_dir=str(sweep_dir),
        name=f"summary-{group}",
        job_type="sweep",
        notes=f"{len(rows)} rows across the points of {sweep_dir}",
        tags=["sweep-summary"],
        group=group,
    )
    try:
        table = as_table(
            wandb, [r | {"configuration": f"{r['point']}: {r['configuration']}"} for r in rows]
        )
        wrun.log({"sweep/results": table} | result_charts(wandb, table, "score"))
    finally:
        wrun.finish()
