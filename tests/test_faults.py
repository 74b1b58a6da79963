"""Kill -9 a study at named points, resume each time: nothing lost, nothing redone.

One uninterrupted reference run, then one chain over a second store: the run is killed
(SIGKILL, through the HARNESS_FAULT_AT hook of harness.generate) at each point in turn, every
step resuming what the steps before it left, and a last step finishes. Each step must keep
every stored generation, store no key twice and make only what was not stored; the finished
records must equal the reference run's (timing fields aside). The slow test does it to a real
SmolLM2 study through `python -m harness.run`; a fast one to the core on the fake engine.
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

from harness import benchmarks
from harness.benchmarks import get
from harness.config import ModelConfig, RunConfig
from harness.methods import knobs
from harness.plan import configurations
from harness.store import Store
from tests.conftest import FakeEngine, fake_slot, run_execute, write_gsm8k

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
    "{name: majority_vote, k: 3, temperature: 0.7, max_tokens: 16}",
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


@pytest.mark.slow
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
    print("\nfault injection (found: of the stages that finished before the kill):")
    for f in figures:
        print("  " + ", ".join(f"{k} {v}" for k, v in f.items()))

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["store/made"] == figures[-1]["made"] == len(reference) - len(before)
    assert (metrics["store/found"] + metrics["store/made"]) == (
        ref_metrics["store/found"] + ref_metrics["store/made"]
    )
    assert set(after) == set(reference)
    assert comparable(run_dir) == comparable(ref_dir)
    for label, m in ref_metrics["configurations"].items():
        assert m["gsm8k/acc"] == metrics["configurations"][label]["gsm8k/acc"], label


def test_fault_point_kills_only_at_the_named_point():
    code = "from harness.generate import fault_point; fault_point('score'); fault_point('write')"
    env = {**os.environ, "HARNESS_FAULT_AT": "write"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    env["HARNESS_FAULT_AT"] = "nowhere"
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=120).returncode == 0


FAKE_MODELS = {n: ModelConfig(name=n, path=f"org/{n}", revision="r1") for n in ("small", "big")}


def fake_study(data: Path, store: Path) -> tuple[list[dict], list]:
    """Every method, two proposer models, on the fake engine: (records, stage stats)."""
    t = {"temperature": 0.7}
    rows = [
        knobs("majority_vote", k=3, **t),
        knobs("self_moa", k=3, layers=3, **t),
        knobs("mixed_moa", mixture="ssb", **t),
        knobs("self_moa_seq", k=4, window=3, reserved=1, **t),
        knobs("usc", k=3, **t),
        knobs("rank_fuse", k=3, keep=2, **t),
    ]
    run = RunConfig(model=FAKE_MODELS["small"], method=rows[0], configurations=rows,
                    letters={"s": "small", "b": "big"})  # fmt: skip
    bench = get(benchmarks.knobs(name="gsm8k", data_dir=str(data)))
    slot = fake_slot(FAKE_MODELS, lambda model: FakeEngine(model.name, []))
    return run_execute(configurations(run), bench.load(), bench, slot, Store(store))


def test_fake_study_killed_at_every_stage_resumes_with_only_the_missing_work(tmp_path):
    data = write_gsm8k(tmp_path / "data")
    reference, _ = fake_study(data, tmp_path / "ref_store")
    total = len(store_lines(tmp_path / "ref_store"))
    store = tmp_path / "store"
    for point in ["load", "stored:propose", "stored:aggregate", "stored:aggregate-2", "score"]:
        before = {g["key"]: g["text"] for g in store_lines(store)} if store.exists() else {}
        pid = os.fork()
        if pid == 0:  # the child runs the study until the fault point kills it
            os.environ["HARNESS_FAULT_AT"] = point
            try:
                fake_study(data, store)
            finally:
                os._exit(0)
        status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        assert status == -signal.SIGKILL, f"{point} was not reached"
        lines = store_lines(store)
        after = {g["key"]: g["text"] for g in lines}
        assert all(after.get(k) == v for k, v in before.items()) and len(lines) == len(after)
    records, stages = fake_study(data, store)
    assert sum(s.made for s in stages) == total - len(after) == 0  # all stored by `score`
    assert len(store_lines(store)) == total
    assert [{**r, "gen_s": 0} for r in records] == [{**r, "gen_s": 0} for r in reference]
