"""Read offline W&B runs here, with W&B's own record schema (`wandb.proto`): no account needed.

An offline run keeps its summary, config, history and exit state only in its binary log
`<run dir>/wandb/offline-run-*/run-<id>.wandb` (what `wandb sync` uploads). That log is a
LevelDB-style record log: a 7-byte header (":W&B", magic, version), then 32 KiB blocks of
records (crc32, length, type: full/first/middle/last), each a serialized `wandb.proto` Record.

Usage:
    python scripts/wandb_offline.py runs/multirun/2025-01-01/12-00-00   # every run below it
    python scripts/wandb_offline.py runs/slurm/42 --items               # and the items tables
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

HEADER = 7
BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list[pb.Record]:
    """Every Record of a .wandb log, in order."""
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B log (header {data[:4]!r})")
    out, pos, parts = [], HEADER, []
    while pos + 7 <= len(data):
        room = BLOCK - pos % BLOCK
        if room < 7:  # a block's tail too short for a record header is padding
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:  # zero padding
            pos += room
            continue
        parts.append(data[pos + 7 : pos + 7 + length])
        pos += 7 + length
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(b"".join(parts))
            out.append(record)
            parts = []
    return out


def describe(path: Path) -> dict:
    """id, name, group, state, config, summary and logged tables of one offline run log."""
    run: dict = {"file": str(path), "summary": {}, "config": {}, "tables": {}, "state": "running"}
    for r in records(path):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            run |= {"id": r.run.run_id, "name": r.run.display_name, "group": r.run.run_group}
            for item in r.run.config.update:
                run["config"][item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in r.config.update:
                run["config"][item.key] = json.loads(item.value_json)
        elif kind == "summary":
            for item in r.summary.update:
                path_ = list(item.nested_key) or [item.key]  # a table's fields come nested
                node = run["summary"]
                for part in path_[:-1]:
                    if not isinstance(node.get(part), dict):
                        node[part] = {}
                    node = node[part]
                node[path_[-1]] = json.loads(item.value_json)
        elif kind == "preempting":
            run["state"] = "preempting"
        elif kind == "exit":
            run["exit_code"] = r.exit.exit_code
            if run["state"] != "preempting":
                run["state"] = "finished" if r.exit.exit_code == 0 else "failed"
        elif kind == "artifact":
            run.setdefault("artifacts", []).append(r.artifact.name)
    for key, value in list(run["summary"].items()):
        if isinstance(value, dict) and value.get("_type") == "table-file":
            run["tables"][key] = path.parent / "files" / value["path"]
            del run["summary"][key]
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="run/sweep dirs or .wandb files")
    parser.add_argument("--items", action="store_true", help="print the items tables")
    args = parser.parse_args()
    logs = []
    for p in args.paths:
        logs += [p] if p.suffix == ".wandb" else sorted(p.rglob("offline-run-*/run-*.wandb"))
    if not logs:
        sys.exit(f"no offline W&B runs (offline-run-*/run-*.wandb) under {args.paths}")
    for path in logs:
        run = describe(path)
        print(f"run {run.get('id')} {run.get('name')!r} group={run.get('group')!r} {run['state']}")
        print(f"  {path}")
        for key in sorted(run["summary"]):
            print(f"  {key} = {run['summary'][key]}")
        for key, table_path in run["tables"].items():
            table = json.loads(table_path.read_text())
            print(f"  table {key}: {len(table['data'])} rows, columns {table['columns']}")
            if args.items:
                for row in table["data"]:
                    print("    " + json.dumps(dict(zip(table["columns"], row, strict=True)))[:300])
        if run.get("artifacts"):
            print(f"  artifacts: {', '.join(run['artifacts'])}")


if __name__ == "__main__":
    main()
