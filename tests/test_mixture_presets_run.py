"""Mixed-USC and Self-MoA-Seq with a second model's samples run end to end on the CPU models:
one study holds the rows of experiment=paper_seq_second_model_cpu and the Mixed-USC row of
experiment=mixed_usc_cpu (read from the presets, cut to 2 items and 48-token caps), so each of
the three models loads once and its pool serves both methods. A real engine per model; the
records hold each model's samples where the method put them, and a selection names one of
the proposals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import write_gsm8k

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
Q, S, G = "qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct", "gemma-3-270m"
CAP = 48


def preset_rows(preset: str) -> list[dict]:
    rows = OmegaConf.to_container(OmegaConf.load(ROOT / f"conf/experiment/{preset}.yaml"))
    return [{**r, **{k: CAP for k in ("max_tokens", "aggregator_max_tokens") if k in r}}
            for r in rows["configurations"]]  # fmt: skip


def flow(row: dict) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in row.items()) + "}"


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict[str, list[dict]]:
    tmp = tmp_path_factory.mktemp("mixtures")
    usc = [r for r in preset_rows("mixed_usc_cpu") if "mixture" in r]
    rows = [*preset_rows("paper_seq_second_model_cpu"), *usc]
    data, run_dir = write_gsm8k(tmp / "data"), tmp / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "harness.run", "experiment=paper_seq_second_model_cpu",
         f"configurations=[{', '.join(map(flow, rows))}]", f"benchmark.data_dir={data}",
         "benchmark.limit=2", "logger.mode=disabled", f"store_dir={tmp / 'store'}",
         f"hydra.run.dir={run_dir}"],
        cwd=ROOT, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    by_conf: dict[str, list[dict]] = {}
    for line in (run_dir / "records.jsonl").open():
        r = json.loads(line)
        by_conf.setdefault(r["configuration"], []).append(r)
    return by_conf


def test_mixed_usc_selects_one_of_three_models_answers(records):
    mixed = records["usc(qqssgg)"]
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


def test_seq_reads_the_second_models_samples_in_its_last_window(records):
    seconds = {"self_moa_seq(qqqqqqsss)": S, "self_moa_seq(qqqqqqggg)": G}
    assert set(seconds) <= set(records)
    for label, second in seconds.items():
        for r in records[label]:
            assert [p["model"] for p in r["proposals"]] == [Q] * 6 + [second] * 3
            assert [g["mode"] for g in r["rounds"]] == ["self_moa_seq"] * 2  # 6, then 3 + 3
            assert all(g["model"] == Q for g in r["rounds"])
            assert r["calls"] == 9 + 2
    # the one-model Seq row shares q's first 6 samples with the mixtures (one pool per model),
    # and Mixed-USC the first 2 samples of each model with the Seq mixtures
    (alone,) = [c for c in records if c.startswith("self_moa_seq(") and c not in seconds]
    for a, b in zip(records[alone], records["self_moa_seq(qqqqqqsss)"], strict=True):
        assert [p["text"] for p in a["proposals"][:6]] == [p["text"] for p in b["proposals"][:6]]
    for u, b in zip(records["usc(qqssgg)"], records["self_moa_seq(qqqqqqsss)"], strict=True):
        assert [p["text"] for p in u["proposals"][2:4]] == [p["text"] for p in b["proposals"][6:8]]
