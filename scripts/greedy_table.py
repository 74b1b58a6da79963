"""Print the greedy-score table written by scripts/greedy_table.sh (models x benchmarks)."""

import json
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/greedy")
cells: dict[str, dict[str, str]] = {}
for path in sorted(root.glob("*/metrics.json")):
    metrics = json.loads(path.read_text())
    (summary,) = metrics["configurations"].values()
    key = metrics["metric"]
    unscored = summary["items"] - summary["scored"]
    cell = f"{summary[key]:.3f} [{summary[key + '_ci_low']:.2f}, {summary[key + '_ci_high']:.2f}]"
    cell += f" n={summary['items']}" + (f" ({unscored} unscored)" if unscored else "")
    cells.setdefault(metrics["benchmark"] + f" ({key.split('/')[1]})", {})[
        path.parent.name.removeprefix(metrics["benchmark"] + "_")
    ] = cell
models = sorted({m for row in cells.values() for m in row})
print("| benchmark | " + " | ".join(models) + " |")
print("|---|" + "---|" * len(models))
for bench, row in cells.items():
    print(f"| {bench} | " + " | ".join(row.get(m, "-") for m in models) + " |")
