"""What keeps a paper-size study cheap (issue 21): the W&B items table sampled by item, records
written without asdict's deep copy (same JSON), each distinct text graded once, and
scripts/paper_scale.py end to end at a small fraction (slow)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from harness.records import Record

GOLDEN = Path(__file__).parent / "data" / "golden"


def test_record_to_json_is_asdict():
    n = 0
    for name in ("records_gsm8k.jsonl", "records_mt_bench.jsonl"):
        for line in (GOLDEN / name).read_text().splitlines():
            r = Record.from_json(json.loads(line))
            assert r.to_json() == asdict(r)
            assert json.dumps(r.to_json()) == json.dumps(asdict(r))
            n += 1
    assert n > 10
    judged = next(
        Record.from_json(json.loads(x))
        for x in (GOLDEN / "records_mt_bench.jsonl").read_text().splitlines()
        if json.loads(x).get("judgment")
    )
    out = judged.to_json()
    out["judgment"]["replies"] = None  # a copy: the record is unchanged
    assert judged.judgment["replies"] is not None


def test_each_distinct_text_of_an_item_is_graded_once(tmp_path):
    from harness import benchmarks
    from harness.score import grader
    from tests.conftest import write_gsm8k

    cfg = benchmarks.knobs(name="gsm8k", data_dir=str(write_gsm8k(tmp_path)), limit=2)
    bench = benchmarks.get(cfg)
    items = bench.load()
    calls = []
    score = bench.score
    bench.score = lambda item, answer: calls.append((item.id, answer)) or score(item, answer)

    class Job:
        def __init__(self, item):
            self.item = item

    grade = grader(bench)
    first = grade(Job(items[0]), "so #### 12")
    assert first == {"answer": "12", "score": 1.0}
    first["score"] = 0.0  # callers get their own dict
    assert grade(Job(items[0]), "so #### 12") == {"answer": "12", "score": 1.0}
    grade(Job(items[1]), "so #### 12")
    assert calls == [(items[0].id, "12"), (items[1].id, "12")]


def test_the_wandb_items_table_samples_whole_items_above_its_cap():
    from harness.tracking import items_sample

    def record(conf: str, item: int) -> Record:
        return Record(
            conf, "single", f"b/{item}", 1, "q", "r", (), (), None, (), (), None, None, None,
            None, "ok", None, 1, 1, 1, 0.0,
        )  # fmt: skip

    records = [record(c, i) for i in range(100) for c in ("a", "b", "c")]
    assert items_sample(records, 1000) == records
    shown = items_sample(records, 30)
    assert len(shown) == 30
    by_item = {}
    for r in shown:
        by_item.setdefault(r.item_id, set()).add(r.configuration)
    assert len(by_item) == 10 and all(confs == {"a", "b", "c"} for confs in by_item.values())
    assert items_sample(list(reversed(records)), 30)[0].item_id in by_item  # same items any order
    assert len(items_sample(records, 1)) == 3  # at least one whole item


@pytest.mark.slow
def test_paper_scale_script_runs_at_a_small_fraction(tmp_path):
    """scripts/paper_scale.py end to end (studies, analysis with embeddings, warm rerun)."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "scripts/paper_scale.py", "--fraction", "0.002", "--embed-sample", "100",
         "--out", str(tmp_path / "ps"), "--json", str(tmp_path / "f.json")],
        capture_output=True, text=True, timeout=1500,  # ~3 min idle; 10+ under load
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    figures = json.loads((tmp_path / "f.json").read_text())
    cold, warm = figures["cold"], figures["warm"]
    assert cold["items"] == {"mmlu_redux": 11, "cruxeval": 2, "math500": 1}
    assert cold["made"] == cold["generations"] > 0 and warm["made"] == 0
    assert warm["generations"] == cold["generations"]
    assert "harness/GPU" in out.stdout and "store start-up" in out.stdout
    assert figures["analysis_alone_s"] > 0
    # 100 sequences embedded by MiniLM, the rest stand-ins whose time is projected
    assert cold["embedded_sequences"] == 100 and cold["stand_in_sequences"] > 0
    assert "PROJECTED" in out.stdout and "harness with the embeddings on the GPU" in out.stdout
    assert warm["embedded_sequences"] == warm["stand_in_sequences"] == 0  # all cached
