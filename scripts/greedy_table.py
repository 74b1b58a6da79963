"""Print the greedy-score table written by scripts/greedy_table.sh (models x benchmarks)."""

import json
import sys
from pathlib import Path

from harness.summary import read_summaries

root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/greedy")
cells: dict[str, dict[str, str]] = {}
for path in sorted(root.glob("*/metrics.json")):
    keys, summaries = read_summaries(json.loads(path.read_text()))
    (s,) = summaries.values()
    unscored = s.items - s.scored
    cell = f"{s.score:.3f} [{s.ci_low:.2f}, {s.ci_high:.2f}]"
    cell += f" n={s.items}" + (f" ({unscored} unscored)" if unscored else "")
    cells.setdefault(f"{keys.benchmark} ({keys.metric})", {})[
        path.parent.name.removeprefix(keys.benchmark + "_")
    ] = cell
models = sorted({m for row in cells.values() for m in row})
print("| benchmark | " + " | ".join(models) + " |")
print("|---|" + "---|" * len(models))
for bench, row in cells.items():
    print(f"| {bench} | " + " | ".join(row.get(m, "-") for m in models) + " |")
