"""The run directory: the record of a run; W&B only mirrors it.

config.yaml    the resolved, typed configuration
records.jsonl  one record per (configuration, item): proposals, rounds, final answer, scores
metrics.json   per-configuration metrics, per-stage timings, store counts, peak memory
run.log        the log (written by Hydra's job logging)
wandb/         the offline W&B run, when logger.mode=offline
Every generation itself lives in the shared store (harness.store), written as each stage ends.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from omegaconf import OmegaConf

from harness.config import RunConfig
from harness.records import Record


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    def write_config(self, run: RunConfig) -> None:
        self._atomic("config.yaml", OmegaConf.to_yaml(OmegaConf.structured(run)))

    def write_records(self, records: list[Record]) -> None:
        self._atomic("records.jsonl", "".join(json.dumps(r.to_json()) + "\n" for r in records))

    def write_metrics(self, metrics: dict) -> None:
        self._atomic("metrics.json", json.dumps(metrics, indent=2) + "\n")

    def _atomic(self, name: str, text: str) -> None:
        tmp = self.path / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path / name)
