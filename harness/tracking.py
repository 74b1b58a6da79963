"""Experiment tracking: W&B (offline by default) or a do-nothing stand-in, so callers never branch.

Summary keys are the same in every run: `<benchmark>/<metric>` (acc, win_rate or score),
`cost/<x>`, `time/<stage>_s`, for the run's main configuration; the baseline's go under
`baseline/`. Offline runs live in
`<run_dir>/wandb/` and are uploaded later with `wandb sync <run_dir>/wandb/offline-run-*`.

The run id is derived from the run directory, so a requeued or resumed job (same directory)
continues its W&B run (`resume="allow"`; offline, its second `offline-run-*` folder syncs into the
same run). Points of one sweep share a W&B group (`logger.group`, set from the sweep directory by
`harness.run`). A failed run finishes with its exit code (W&B marks it failed) and a preempted
one is marked preempting, so no run is left running. At the end the run directory (config,
records, metrics, log, plots) is logged as an artifact and its plots as images.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict
from pathlib import Path

from harness.config import RunConfig
from harness.records import Record

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


class NullTracker:
    def log_summary(self, summary: dict) -> None:
        pass

    def log_items(self, records: list[Record]) -> None:
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
    def __init__(self, run: RunConfig, name: str):
        import wandb

        self.wandb = wandb
        cfg = asdict(run)
        cfg.pop("models")
        self.run = wandb.init(
            project=run.logger.project,
            entity=run.logger.entity,
            group=run.logger.group,
            name=name,
            tags=run.logger.tags,
            config=cfg,
            dir=run.run_dir,
            mode=run.logger.mode,
            id=run_id(run.run_dir),
            resume="allow",
        )
        self.run_dir = run.run_dir
        log.info("W&B %s run %s in %s", run.logger.mode, self.run.id, self.run.dir)

    def log_summary(self, summary: dict) -> None:
        self.run.summary.update(summary)

    def log_items(self, records: list[Record]) -> None:
        table = self.wandb.Table(columns=ITEM_COLUMNS)
        for r in records:
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


def make_tracker(run: RunConfig, name: str) -> NullTracker:
    if run.logger.mode == "disabled":
        return NullTracker()
    return WandbTracker(run, name)
