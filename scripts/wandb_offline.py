"""Print what the dashboards of offline W&B runs hold, read by W&B's own reader.

A thin front end to `harness.dashboard.read_offline`, which runs `wandb leet inspect --json`
(W&B's reader of a run's .wandb log; no account or network needed). For one run by hand:
    wandb leet inspect --summary --json <run_dir>/wandb/offline-run-*

Usage:
    python scripts/wandb_offline.py runs/multirun/2025-01-01/12-00-00   # every run below it
    python scripts/wandb_offline.py runs/slurm/42 --rows                  # and the table rows
"""

from __future__ import annotations

import argparse
import json
import sys

from harness.dashboard import offline_runs, read_offline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="run or sweep directories")
    parser.add_argument("--rows", action="store_true", help="print the rows of every table")
    args = parser.parse_args()
    folders = [f for p in args.paths for f in offline_runs(p)]
    if not folders:
        sys.exit(f"no offline W&B runs (offline-run-*/run-*.wandb) under {args.paths}")
    for folder in folders:
        run = read_offline(folder)
        print(f"run {run['id']} {run['name']!r} job_type={run['job_type']} group={run['group']}")
        print(f"  {folder}  state={run['state']} tags={run['tags']}")
        print(f"  notes: {run['notes']}")
        if run["config"].get("command"):
            print(f"  command: {run['config']['command']}")
        for name, files in sorted(run["artifacts"].items()):
            print(f"  artifact {name}: {len(files)} files")
        for key, panel in sorted(run["charts"].items()):
            print(f"  chart {key}: {panel}")
        for key, rows in sorted(run["tables"].items()):
            print(f"  table {key}: {len(rows)} rows, columns {list(rows[0]) if rows else []}")
            if args.rows:
                for row in rows:
                    print("    " + json.dumps(row)[:300])
        for key in sorted(run["summary"]):
            print(f"  {key} = {run['summary'][key]}")


if __name__ == "__main__":
    main()
