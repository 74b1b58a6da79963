"""Grade CRUXEval's gold outputs (and optionally a wrong answer per item) and report items/s.

Every gold output must grade correct; the script exits 1 when one does not.

Usage:
    python scripts/bench_cruxeval.py                        # all 800 items, gold answers
    python scripts/bench_cruxeval.py --limit 100 --wrong    # also a wrong literal per item
    python scripts/bench_cruxeval.py --expression           # gold as an expression (sandboxed)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter

from harness import benchmarks
from harness.benchmarks import get


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("HARNESS_DATA_DIR", "../shared/data"))
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--wrong", action="store_true", help="also grade a wrong answer per item")
    parser.add_argument(
        "--expression", action="store_true", help="wrap gold as `(lambda: <gold>)()` (not literal)"
    )
    args = parser.parse_args()
    bench = get(benchmarks.knobs(name="cruxeval", data_dir=args.data_dir, limit=args.limit))
    items = bench.load()
    wrong_graded, failures = 0, []
    start = time.monotonic()
    for item in items:
        answer = f"(lambda: {item.reference})()" if args.expression else item.reference
        if bench.score(item, answer) != 1.0:
            failures.append(item.id)
        if args.wrong:
            wrong_graded += bench.score(item, "'not the answer'") == 0.0
    elapsed = time.monotonic() - start
    graded = len(items) * (2 if args.wrong else 1)
    report = {
        "items": len(items),
        "graded": graded,
        "seconds": round(elapsed, 2),
        "items_per_s": round(graded / elapsed, 2),
        "gold_correct": len(items) - len(failures),
        "wrong_scored_zero": wrong_graded if args.wrong else None,
        "outcomes": dict(Counter(bench.score_outcomes)),
        "failures": failures[:20],
    }
    print(json.dumps(report, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
