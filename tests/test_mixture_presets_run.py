"""Mixed-USC and Self-MoA-Seq with a second model's samples run end to end on the CPU models
(experiment=mixed_usc_cpu and experiment=paper_seq_second_model_cpu, cut to 2 items and short
caps): a real engine per model, the records hold each model's samples where the method put
them, and a selection names one of the proposals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_gsm8k

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
Q, S, G = "qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct", "gemma-3-270m"


def run_preset(tmp_path: Path, preset: str, *extra: str) -> list[dict]:
    data = write_gsm8k(tmp_path / "data")
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "harness.run", f"experiment={preset}", f"benchmark.data_dir={data}",
         "benchmark.limit=2", "logger.mode=disabled", f"store_dir={tmp_path / 'store'}",
         f"hydra.run.dir={run_dir}", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in (run_dir / "records.jsonl").open()]


def test_mixed_usc_selects_one_of_three_models_answers(tmp_path):
    records = run_preset(tmp_path, "mixed_usc_cpu", "configurations.0.max_tokens=48",
                         "configurations.1.max_tokens=48")  # fmt: skip
    mixed = [r for r in records if r["configuration"] == "usc(qqssgg)"]
    assert len(mixed) == 2
    for r in mixed:
        assert [p["model"] for p in r["proposals"]] == [Q, Q, S, S, G, G]
        assert r["aggregation"]["model"] == Q and r["aggregation"]["selection"]
        choice = r["aggregation"]["choice"]
        if choice is None:  # the reply named no response: the documented fallback, counted
            assert "usc_parse_failed" in r["events"]
        else:
            assert r["final_text"] == r["proposals"][choice]["text"]
        assert r["calls"] == 7


def test_seq_reads_the_second_models_samples_in_its_last_window(tmp_path):
    caps = [f"configurations.{i}.{k}=48" for i in range(4) for k in ("max_tokens",
            "aggregator_max_tokens")]  # fmt: skip
    records = run_preset(tmp_path, "paper_seq_second_model_cpu", *caps)
    by_conf: dict[str, list[dict]] = {}
    for r in records:
        by_conf.setdefault(r["configuration"], []).append(r)
    seconds = {"self_moa_seq(qqqqqqsss)": S, "self_moa_seq(qqqqqqggg)": G}
    assert set(seconds) <= set(by_conf)
    for label, second in seconds.items():
        for r in by_conf[label]:
            assert [p["model"] for p in r["proposals"]] == [Q] * 6 + [second] * 3
            assert [g["mode"] for g in r["rounds"]] == ["self_moa_seq"] * 2  # 6, then 3 + 3
            assert all(g["model"] == Q for g in r["rounds"])
            assert r["calls"] == 9 + 2
    # the one-model Seq row shares q's first 6 samples with the mixtures (one pool per model)
    (alone,) = [c for c in by_conf if c.startswith("self_moa_seq(") and c not in seconds]
    for a, b in zip(by_conf[alone], by_conf["self_moa_seq(qqqqqqsss)"], strict=True):
        assert [p["text"] for p in a["proposals"][:6]] == [p["text"] for p in b["proposals"][:6]]
