"""Experiment tracking: W&B (offline by default) or a do-nothing stand-in, so callers never branch.

Summary keys are the same in every run: `<benchmark>/acc`, `cost/<x>`, `time/<stage>_s`, for the
run's main configuration; the baseline's go under `baseline/`. Offline runs live in
`<run_dir>/wandb/` and are uploaded later with `wandb sync <run_dir>/wandb/offline-run-*`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from harness.config import RunConfig

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

    def log_items(self, records: list[dict]) -> None:
        pass

    def finish(self, exit_code: int = 0) -> None:
        pass


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
        )
        log.info("W&B %s run %s in %s", run.logger.mode, self.run.id, self.run.dir)

    def log_summary(self, summary: dict) -> None:
        self.run.summary.update(summary)

    def log_items(self, records: list[dict]) -> None:
        table = self.wandb.Table(columns=ITEM_COLUMNS)
        for r in records:
            proposals = "\n\n".join(f"[{p['sample_index']}] {p['text']}" for p in r["proposals"])
            table.add_data(
                r["configuration"],
                r["item_id"],
                r["question"],
                r["reference"],
                proposals,
                r["final_text"],
                r["answer"],
                r["score"],
                r["outcome"],
            )
        self.run.log({"items": table})

    def finish(self, exit_code: int = 0) -> None:
        self.run.finish(exit_code=exit_code)


def make_tracker(run: RunConfig, name: str) -> NullTracker:
    if run.logger.mode == "disabled":
        return NullTracker()
    return WandbTracker(run, name)
