"""Experiment tracking: W&B (offline by default) or a do-nothing stand-in, so callers never branch.

Summary keys are the same in every run (named once, in harness.summary): `<benchmark>/<metric>`
(acc, win_rate or score), `cost/<x>`, `time/<stage>_s`, for the run's main configuration; the
baseline's go under `baseline/`, a study's under `<label>/`. Offline runs live in
`<run_dir>/wandb/` and are uploaded later with `wandb sync <run_dir>/wandb/offline-run-*`.

The run id is derived from the run directory, so a requeued or resumed job (same directory)
continues its W&B run (`resume="allow"`; offline, its second `offline-run-*` folder syncs into the
same run). Points of one sweep share a W&B group (`logger.group`, set from the sweep directory by
`harness.run`). A failed run finishes with its exit code (W&B marks it failed) and a preempted
one is marked preempting, so no run is left running. At the end the run directory (config,
records, metrics, log, plots) is logged as an artifact and its plots as images.

The dashboard of a run: `results` (one row per configuration: score, CI, proposal and oracle
scores, calls, tokens, seconds, truncations; `reference` marks the single-model rows), native
charts drawn from it (`charts/score`: bar of score per configuration, the reference rows included;
`charts/score_vs_tokens`: scatter of score against generated tokens), `items` (every record of
a study up to ITEM_TABLE_ROWS rows; above that, every configuration on a fixed sample of items,
`items_table/rows` of `items_table/of` in the summary; records.jsonl has all), the summary.
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
import math
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.config import LoggerConfig, RunConfig
from harness.methods import is_reference
from harness.multirun import point_label, sweep_group
from harness.records import Record
from harness.summary import ConfigSummary, StudyMetrics

log = logging.getLogger(__name__)

ITEM_COLUMNS = [
    "configuration",
    "item_id",
    "question",
    "reference",
    "proposals",
    "final_text",
    "answer",
    "score",
    "outcome",
]


JOB_TYPES = ("study", "agreement", "analysis", "sweep")
# The `items` table holds at most this many rows: a paper-size study has ~100,000 records per
# benchmark (each with six proposals), which W&B would hold in memory and upload as one file.
ITEM_TABLE_ROWS = 5000


def items_sample(records: list[Record], limit: int = ITEM_TABLE_ROWS) -> list[Record]:
    """All records when they fit in `limit`, else every configuration's records of the same
    items: the items whose sha256(item id) is smallest, as many as fit (at least one)."""
    if len(records) <= limit:
        return records
    items = sorted({r.item_id for r in records}, key=lambda i: hashlib.sha256(i.encode()).digest())
    per_item = max(1, math.ceil(len(records) / len(items)))
    chosen = set(items[: max(1, limit // per_item)])
    return [r for r in records if r.item_id in chosen]


def results_rows(summaries: dict[str, ConfigSummary]) -> list[dict]:
    """One row per configuration (harness.metrics.summarize): the results table."""
    return [
        {
            "configuration": label,
            "method": m.method,
            "reference": is_reference(m.method),
            "items": m.items,
            "score": m.score,
            "ci_low": m.ci_low,
            "ci_high": m.ci_high,
            "proposal_score": m.proposal_score,
            "oracle_score": m.oracle_score,
            "calls": m.calls,
            "prompt_tokens": m.prompt_tokens,
            "generated_tokens": m.generated_tokens,
            "seconds": m.generate_s,
        }
        | {f"truncated_{k}": v for k, v in asdict(m.truncated).items()}
        for label, m in summaries.items()
    ]


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


class NullTracker:
    def log_study(self, metrics: StudyMetrics, records: list[Record]) -> None:
        pass

    def finish(self, exit_code: int = 0, preempted: bool = False) -> None:
        pass


def run_id(run_dir: str) -> str:
    """A W&B run id that is the same for every attempt of a run directory."""
    return hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]


def run_files(run_dir: str) -> list[Path]:
    """The run directory's own files (not W&B's folder, not submitit's or Hydra's internals)."""
    root = Path(run_dir)
    skip = ("wandb", ".submitit", ".hydra")
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).parts[0] not in skip and not p.name.startswith(".")
    )


class WandbTracker(NullTracker):
    def __init__(self, run: RunConfig, name: str, job_type: str = "study", main: str | None = None):
        import wandb

        self.wandb, self.main = wandb, main
        cfg = asdict(run)
        cfg.pop("models")
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


def _inspect(folder: Path, *flags: str) -> str:
    """`wandb leet inspect --json [flags] <folder>`: W&B's own reader of a run's .wandb log."""
    cli = Path(sys.executable).with_name("wandb")
    cmd = [str(cli) if cli.exists() else "wandb", "leet", "inspect", "--json", *flags, str(folder)]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout


def read_offline(folder: str | Path) -> dict:
    """What the dashboard of one offline run folder (`wandb/offline-run-*`) holds.

    Keys: name, job_type, group, notes, tags, state, summary (scalars), charts (key -> W&B
    panel id, e.g. `wandb/bar/v0`), tables (key -> list of row dicts), from W&B's own reader.
    """
    folder = Path(folder)
    state = json.loads(_inspect(folder, "--summary"))
    records = [json.loads(line) for line in _inspect(folder).splitlines() if line.strip()]
    run = next(r["run"] for r in records if r["type"] == "run")
    charts = {}
    for r in records:
        if r["type"] == "config":
            for key, value in r["config"].get("update", {}).items():
                if key.startswith("_wandb.visualize."):
                    charts[key.removeprefix("_wandb.visualize.")] = value["panel_config"][
                        "panelDefId"
                    ]
    tables, scalars = {}, {}
    for key, value in state.get("summary", {}).items():
        if isinstance(value, dict) and value.get("_type") == "table-file":
            data = json.loads((folder / "files" / value["path"]).read_text())
            tables[key] = [dict(zip(data["columns"], row, strict=True)) for row in data["data"]]
        elif not key.startswith("_"):
            scalars[key] = value
    return {
        "id": run.get("run_id"),
        "name": run.get("display_name"),
        "job_type": run.get("job_type"),
        "group": run.get("run_group"),
        "notes": run.get("notes"),
        "tags": run.get("tags", []),
        "state": state.get("state"),
        "summary": scalars,
        "charts": charts,
        "tables": tables,
    }


def offline_runs(path: str | Path) -> list[Path]:
    """Every offline run folder under a run or sweep directory."""
    return sorted(p.parent for p in Path(path).rglob("offline-run-*/run-*.wandb"))
