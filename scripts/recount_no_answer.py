"""Re-extract the answers of recorded runs with the current extraction code.

For every run directory (one `records.jsonl` each), counts the records whose recorded outcome is
`no_answer`, how many of those the current `extract_answer` now reads an answer from (they were
extraction misses), and how many of those answers score correct; also how many recorded answers
change overall and the score before and after. Nothing is generated: only stored texts are read.

Usage:
    python -m scripts.recount_no_answer RUN_DIR [RUN_DIR ...]   (from the repository root)
    python -m scripts.recount_no_answer /tmp/extr/*-{gsm8k,mmlu,math500}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness import benchmarks
from harness.benchmarks import benchmark_class
from harness.benchmarks.base import Item


def recount(run_dir: Path) -> dict:
    """Counts for one run directory (its benchmark is read from config.yaml)."""
    import yaml

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    name = config["benchmark"]["name"]
    bench = benchmark_class(name)(benchmarks.knobs(name=name))
    counts = {
        "run": run_dir.name,
        "benchmark": name,
        "items": 0,
        "no_answer": 0,
        "now_answered": 0,
        "now_correct": 0,
        "changed": 0,
        "score_before": 0.0,
        "score_after": 0.0,
    }
    for line in (run_dir / "records.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("final_text") is None:
            continue
        item = Item(id=record["item_id"], question="", reference=record["reference"])
        answer = bench.extract_answer(record["final_text"])
        score = bench.score(item, answer)
        counts["items"] += 1
        counts["score_before"] += record.get("score") or 0.0
        counts["score_after"] += score
        counts["changed"] += answer != record.get("answer")
        if record["outcome"] == "no_answer":
            counts["no_answer"] += 1
            counts["now_answered"] += answer is not None
            counts["now_correct"] += score == 1.0
    return counts


def main(paths: list[str]) -> None:
    print(
        "| run | items | no_answer | now answered | now correct | changed | score before | after |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for path in paths:
        c = recount(Path(path))
        n = max(c["items"], 1)
        print(
            f"| {c['run']} | {c['items']} | {c['no_answer']} | {c['now_answered']} | "
            f"{c['now_correct']} | {c['changed']} | {c['score_before'] / n:.3f} | "
            f"{c['score_after'] / n:.3f} |"
        )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
