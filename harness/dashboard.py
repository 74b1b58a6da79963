"""What a W&B dashboard holds: the rows of a study run's tables (written by harness.tracking),
and an offline run read back with W&B's own reader (`wandb leet inspect --json`).

Tables: `results` (a row per configuration, `results_rows`), `items` (a row per record,
`items_sample`: at most ITEM_TABLE_ROWS) and `samples/<configuration>` (a row per proposal with
its extracted answer and score and the item's final answer, `sample_rows`: at most
SAMPLE_TABLE_ROWS per configuration, whole items, the same items in every configuration).

No account or network is needed: `read_offline(<run_dir>/wandb/offline-run-*)` gives the run's
name, job type, group, notes, tags, state, config, summary scalars, tables (as row dicts), native
charts (key -> panel id) and logged artifacts (name -> file paths), as the dashboard would show
them after `wandb sync`. scripts/wandb_offline.py prints it; the tests check the dashboard with it.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from harness.methods import is_reference
from harness.records import Record
from harness.summary import ConfigSummary

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


SAMPLE_COLUMNS = [
    "item_id",
    "turn",
    "sample_index",
    "model",
    "proposal",
    "proposal_answer",
    "proposal_score",
    "finish_reason",
    "final_answer",
    "final_score",
    "outcome",
    "reference",
]

# The `items` table holds at most this many rows: a paper-size study has ~100,000 records per
# benchmark (each with six proposals), which W&B would hold in memory and upload as one file.
ITEM_TABLE_ROWS = 5000
# A `samples/<configuration>` table holds at most this many rows (one per proposal), whole items.
SAMPLE_TABLE_ROWS = 1000


def items_sample(records: list[Record], limit: int = ITEM_TABLE_ROWS) -> list[Record]:
    """All records when they fit in `limit`, else every configuration's records of the same
    items: the items whose sha256(item id) is smallest, as many as fit (at least one)."""
    if len(records) <= limit:
        return records
    items = sorted({r.item_id for r in records}, key=lambda i: hashlib.sha256(i.encode()).digest())
    per_item = max(1, math.ceil(len(records) / len(items)))
    chosen = set(items[: max(1, limit // per_item)])
    return [r for r in records if r.item_id in chosen]


def sample_rows(records: list[Record], limit: int = SAMPLE_TABLE_ROWS) -> list[dict]:
    """One configuration's samples table: a row per proposal (its text, extracted answer, score)
    with the item's final answer and score; whole items, in the fixed order of sha256(item id),
    while at most `limit` rows (at least one item)."""
    rows: list[dict] = []
    for r in sorted(records, key=lambda r: (hashlib.sha256(r.item_id.encode()).digest(), r.turn)):
        item = {
            "item_id": r.item_id,
            "turn": r.turn,
            "final_answer": r.answer,
            "final_score": r.score,
            "outcome": r.outcome,
            "reference": r.reference,
        }
        new = [
            item
            | {
                "sample_index": p.sample_index,
                "model": p.model,
                "proposal": p.text,
                "proposal_answer": p.answer,
                "proposal_score": p.score,
                "finish_reason": p.finish_reason,
            }
            for p in r.proposals
        ] or [item]
        if rows and len(rows) + len(new) > limit:
            break
        rows += new
    return [{c: row.get(c) for c in SAMPLE_COLUMNS} for row in rows]


def results_rows(summaries: dict[str, ConfigSummary]) -> list[dict]:
    """One row per configuration (harness.metrics.summarize): the results table. Truncations
    per stage kind (`truncated_<kind>`), records per outcome (`outcome_<outcome>`) and events per
    kind (`event_<kind>`) are columns, 0 where a configuration has none."""
    outcomes = sorted({o for m in summaries.values() for o in m.outcomes})
    events = sorted({e for m in summaries.values() for e in m.events})
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
        | {f"outcome_{o}": m.outcomes.get(o, 0) for o in outcomes}
        | {f"event_{e}": m.events.get(e, 0) for e in events}
        for label, m in summaries.items()
    ]


def _inspect(folder: Path, *flags: str) -> str:
    """`wandb leet inspect --json [flags] <folder>`: W&B's own reader of a run's .wandb log."""
    cli = Path(sys.executable).with_name("wandb")
    cmd = [str(cli) if cli.exists() else "wandb", "leet", "inspect", "--json", *flags, str(folder)]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout


def _config(records: list[dict]) -> dict:
    """The run's config as the dashboard shows it: init's config, then every update."""
    config = {}
    for r in records:
        update = (r["run"].get("config") or {}) if r["type"] == "run" else r.get("config", {})
        config |= {k: v for k, v in (update.get("update") or {}).items() if not k.startswith("_")}
    return config


def read_offline(folder: str | Path) -> dict:
    """What the dashboard of one offline run folder (`wandb/offline-run-*`) holds.

    Keys: id, name, job_type, group, notes, tags, state, config, summary (scalars), charts (key
    -> W&B panel id, e.g. `wandb/bar/v0`), tables (key -> list of row dicts), artifacts (name ->
    the paths of its files), from W&B's own reader.
    """
    folder = Path(folder)
    state = json.loads(_inspect(folder, "--summary"))
    records = [json.loads(line) for line in _inspect(folder).splitlines() if line.strip()]
    run = next(r["run"] for r in records if r["type"] == "run")
    charts, artifacts = {}, {}
    for r in records:
        if r["type"] == "config":
            for key, value in r["config"].get("update", {}).items():
                if key.startswith("_wandb.visualize."):
                    charts[key.removeprefix("_wandb.visualize.")] = value["panel_config"][
                        "panelDefId"
                    ]
        elif r["type"] == "artifact":
            a = r["artifact"]
            artifacts[a["name"]] = [c["path"] for c in a["manifest"]["contents"]]
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
        "config": _config(records),
        "summary": scalars,
        "charts": charts,
        "tables": tables,
        "artifacts": artifacts,
    }


def offline_runs(path: str | Path) -> list[Path]:
    """Every offline run folder under a run or sweep directory."""
    return sorted(p.parent for p in Path(path).rglob("offline-run-*/run-*.wandb"))
