"""Kill -9 a real SmolLM2 study at named points, resume each time: nothing lost, nothing redone.

One uninterrupted reference run, then one chain over a second store: the run is killed
(SIGKILL, through the HARNESS_FAULT_AT hook of harness.generate) at each point in turn, every
step resuming what the steps before it left, and a last step finishes. Each step must keep
every stored generation, store no key twice and make only what was not stored; the finished
records must equal the reference run's (timing fields aside).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_gsm8k

pytestmark = pytest.mark.slow

# (point, what is happening when it fires)
POINTS = [
    ("load", "load: the proposer model is about to load, nothing generated"),
    ("stored:propose", "proposal: the proposals are stored, no aggregation"),
    ("stored:aggregate", "aggregation: round 1 stored, later rounds not"),
    ("stored:aggregate-2", "aggregation: round 2 stored (MoA layer 3, Seq windows)"),
    ("score", "scoring: every generation stored, nothing scored"),
    ("write", "writing: records.jsonl written, metrics.json not"),
]
ROW = "temperature: 0.7, max_tokens: 16, aggregator_max_tokens: 16"
STUDY = [  # every_method_cpu scaled down: one model (q -> SmolLM2 too), 16-token caps
    f"{{name: majority_vote, k: 3, {ROW}}}",
    f"{{name: self_moa, k: 3, {ROW}}}",
    f"{{name: self_moa, k: 3, layers: 3, {ROW}}}",
    f"{{name: mixed_moa, mixture: sssq, {ROW}}}",
    f"{{name: self_moa_seq, k: 4, window: 3, reserved: 1, {ROW}}}",
    f"{{name: usc, k: 3, {ROW}}}",
    f"{{name: rank_fuse, k: 3, keep: 2, rank_max_tokens: 16, {ROW}}}",
]
STAGE_LINE = re.compile(
    r"stage (\S+) on \S+: \d+ requests, \d+ sequences, (\d+) from the store, (\d+) made"
)


def study(data: Path, store: Path, run_dir: Path, fault: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_FAULT_AT"}
    if fault:
        env["HARNESS_FAULT_AT"] = fault
    args = [
        "experiment=every_method_cpu",
        "model=smollm2-135m-instruct",
        "letters.q=smollm2-135m-instruct",
        f"configurations=[{', '.join(STUDY)}]",
        "benchmark.limit=3",
        f"benchmark.data_dir={data}",
        f"store_dir={store}",
        f"hydra.run.dir={run_dir}",
        "logger.mode=disabled",
    ]
    return subprocess.run(
        [sys.executable, "-m", "harness.run", *args],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )


def store_lines(store: Path) -> list[dict]:
    """Every record of every shard (a torn tail would not parse: none is expected)."""
    return [json.loads(line) for p in sorted(store.glob("*.jsonl")) for line in p.open()]


def stage_counts(run_dir: Path) -> tuple[int, int]:
    """(found, made) summed over the stage lines of a run's log (also of a killed run)."""
    found = made = 0
    for match in STAGE_LINE.finditer((run_dir / "run.log").read_text()):
        found, made = found + int(match[2]), made + int(match[3])
    return found, made


def comparable(run_dir: Path) -> list[dict]:
    records = [json.loads(line) for line in (run_dir / "records.jsonl").open()]
    return [{k: v for k, v in r.items() if k != "gen_s"} for r in records]


def test_sigkill_at_every_stage_then_resume_loses_and_repeats_nothing(tmp_path):
    data = write_gsm8k(tmp_path / "data")
    ref_dir, ref_store = tmp_path / "reference", tmp_path / "ref_store"
    ref = study(data, ref_store, ref_dir, None)
    assert ref.returncode == 0, ref.stderr[-3000:]
    reference = {g["key"]: g["text"] for g in store_lines(ref_store)}
    ref_metrics = json.loads((ref_dir / "metrics.json").read_text())
    assert ref_metrics["store/made"] == len(reference) == len(store_lines(ref_store))

    store, figures = tmp_path / "store", []
    for step, (point, _) in enumerate([*POINTS, (None, "finish")]):
        shards = set(store.glob("*.jsonl"))
        before = {g["key"]: g["text"] for g in store_lines(store)}
        run_dir = tmp_path / f"step{step}"
        proc = study(data, store, run_dir, point)
        if point is None:
            assert proc.returncode == 0, proc.stderr[-3000:]
        else:
            assert proc.returncode == -signal.SIGKILL, f"{point} not reached: {proc.stderr[-2000:]}"
        lines = store_lines(store)
        after = {g["key"]: g["text"] for g in lines}
        # this step's process wrote only its own new shard: what it made
        made = [json.loads(x)["key"] for p in set(store.glob("*.jsonl")) - shards for x in p.open()]
        found, logged_made = stage_counts(run_dir)  # stages that finished before the kill
        figures.append({"killed_at": point, "stored_before": len(before), "found": found,
                        "made": len(made), "stored_after": len(after)})  # fmt: skip
        assert all(after.get(k) == t for k, t in before.items()), f"{point}: a record was lost"
        assert len(lines) == len(after), f"{point}: a key is stored twice"
        assert not set(made) & set(before), f"{point}: a stored generation was made again"
        assert logged_made <= len(made) == len(after) - len(before)
        assert all(reference.get(k) == after[k] for k in made), f"{point}: not the reference's"
    print("\nfault injection:", json.dumps(figures, indent=1))

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["store/made"] == figures[-1]["made"] == len(reference) - len(before)
    assert (metrics["store/found"] + metrics["store/made"]) == (
        ref_metrics["store/found"] + ref_metrics["store/made"]
    )
    assert set(after) == set(reference)
    assert comparable(run_dir) == comparable(ref_dir)
    for label, m in ref_metrics["configurations"].items():
        assert m["gsm8k/acc"] == metrics["configurations"][label]["gsm8k/acc"], label
