"""`python -m harness.run` end to end: real vLLM and SmolLM2, Self-MoA on GSM8K-style items."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_gsm8k

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def command(data, run_dir, store, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "harness.run",
        "experiment=smoke",
        f"benchmark.data_dir={data}",
        "method.k=3",
        f"store_dir={store}",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


def run(*args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def records_of(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "records.jsonl").open()]


def comparable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "gen_s"} for r in records]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_gsm8k(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, data):
    run_dir = tmp_path_factory.mktemp("run")
    store = tmp_path_factory.mktemp("store")
    proc = run(*command(data, run_dir, store, "logger.mode=offline"))
    return run_dir, proc, store


def test_run_directory_holds_config_records_metrics_and_log(finished_run):
    run_dir, _, _ = finished_run
    for name in ("config.yaml", "records.jsonl", "metrics.json", "run.log"):
        assert (run_dir / name).is_file(), name
    assert "self_moa" in (run_dir / "config.yaml").read_text()


def test_records_have_every_proposal_and_the_aggregation(finished_run):
    run_dir, _, _ = finished_run
    records = [json.loads(line) for line in (run_dir / "records.jsonl").open()]
    assert len(records) == 2 * 3  # single baseline + self_moa, 3 items each
    moa = [r for r in records if r["method"] == "self_moa"]
    for r in moa:
        assert [p["sample_index"] for p in r["proposals"]] == [0, 1, 2]
        assert all(
            p["model"] == "smollm2-135m-instruct" and p["generated_tokens"] > 0
            for p in r["proposals"]
        )
        assert r["aggregation"]["model"] == "smollm2-135m-instruct"
        assert r["aggregation"]["text"] == r["final_text"]
        assert r["score"] in (0.0, 1.0) and r["outcome"] in ("ok", "no_answer")
        assert r["calls"] == 4


def test_metrics_keep_load_and_generation_time_apart(finished_run):
    run_dir, _, _ = finished_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    stages = metrics["stages"]
    assert [(s["stage"], s["sequences"]) for s in stages] == [("propose", 3 + 9), ("aggregate", 3)]
    assert stages[0]["load_s"] > 0 and stages[1]["load_s"] == 0  # same model: loaded once
    assert all(s["gen_s"] > 0 and s["generated_tokens"] > 0 for s in stages)
    conf = metrics["configurations"]["self_moa(k=3)"]
    assert conf["items"] == 3 and 0.0 <= conf["gsm8k/acc"] <= 1.0
    assert metrics["memory/peak_rss_gib"] > 0


def test_run_log_has_one_line_per_weight_load_not_one_per_tensor(finished_run):
    run_dir, _, _ = finished_run
    assert (run_dir / "run.log").read_text().count("Attempted to load weight") <= 1  # one load


def test_summary_table_and_run_directory_are_printed(finished_run):
    run_dir, proc, _ = finished_run
    assert "configuration" in proc.stdout and "95% CI" in proc.stdout
    assert "single" in proc.stdout and "self_moa(k=3)" in proc.stdout
    assert f"run directory: {run_dir}" in proc.stdout


def test_wandb_offline_run_has_summary_results_and_items_tables(finished_run):
    from harness.tracking import offline_runs, read_offline

    run_dir, _, _ = finished_run
    [folder] = offline_runs(run_dir)
    run = read_offline(folder)  # W&B's own reader, `wandb leet inspect`
    for key in ("gsm8k/acc", "baseline/gsm8k/acc", "cost/generated_tokens"):
        assert key in run["summary"]
    assert list(run["tables"]["items"][0])[:3] == ["configuration", "item_id", "question"]
    assert len(run["tables"]["items"]) == 6
    assert [r["configuration"] for r in run["tables"]["results"]] == ["single", "self_moa(k=3)"]
    assert run["job_type"] == "study" and run["state"] == "finished"
    assert "truncated_proposals" in run["tables"]["results"][0]
    assert "smollm2-135m-instruct" in run["config"]["models"]
    assert "method.k=3" in run["config"]["overrides"]
    samples = run["tables"]["samples/self_moa(k=3)"]  # a row per proposal: 3 items x 3 samples
    assert len(samples) == 9 and {r["sample_index"] for r in samples} == {0, 1, 2}
    assert all(r["proposal"] and "proposal_score" in r and "final_answer" in r for r in samples)
    assert ".hydra/overrides.yaml" in run["artifacts"][f"run-{run['id']}"]


def test_rerun_regenerates_nothing_and_loads_no_model(finished_run, data, tmp_path):
    run_dir, _, store = finished_run
    # through tests/no_engine.py: had an engine been constructed, the run would exit 97
    overrides = command(data, tmp_path / "again", store, "logger.mode=disabled")[3:]
    proc = run(sys.executable, str(ROOT / "tests" / "no_engine.py"), *overrides)
    assert "found 15 generations, made 0" in proc.stdout
    assert comparable(records_of(tmp_path / "again")) == comparable(records_of(run_dir))
