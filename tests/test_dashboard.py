"""What the W&B dashboard holds, read back with W&B's own offline reader (`wandb leet inspect`):
a tiny study and a 4-point sweep through `python -m harness.run` with the fake engine."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.summary import ConfigSummary, Truncated, read_summaries
from harness.tracking import offline_runs, read_offline, results_rows
from tests.conftest import write_gsm8k

ROOT = Path(__file__).resolve().parent.parent


def fake_run(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    data = tmp_path / "data"
    if not data.exists():
        write_gsm8k(data)
    proc = subprocess.run(
        [
            sys.executable,
            "tests/fake_harness.py",
            *[o for o in overrides if o == "-m"],
            "experiment=smoke",
            f"benchmark.data_dir={data}",
            f"store_dir={tmp_path / 'store'}",
            "logger.mode=offline",
            *[o for o in overrides if o != "-m"],
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"PYTHONPATH": str(ROOT), "WANDB_DATA_DIR": str(tmp_path / "wandb-data")},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study")
    proc = fake_run(tmp, f"hydra.run.dir={tmp / 'run'}")
    [folder] = offline_runs(tmp / "run")
    return tmp / "run", proc, read_offline(folder)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    proc = fake_run(
        tmp, "-m", "method.temperature=0.5,0.7", "method.k=2,3", f"hydra.sweep.dir={tmp / 'sw'}"
    )
    return tmp / "sw", proc, [read_offline(f) for f in offline_runs(tmp / "sw")]


def test_study_logs_a_results_table_with_one_row_per_configuration(study):
    _, _, run = study
    rows = run["tables"]["results"]
    assert [r["configuration"] for r in rows] == ["single", "self_moa(k=2)"]
    assert [r["reference"] for r in rows] == [True, False]
    for column in ("score", "ci_low", "ci_high", "proposal_score", "oracle_score", "calls"):
        assert column in rows[0]
    assert rows[1]["calls"] == 3 * 3 and rows[1]["generated_tokens"] > 0


def test_study_has_native_bar_and_scatter_charts_with_the_reference_rows(study):
    _, _, run = study
    assert run["charts"] == {
        "charts/score": "wandb/bar/v0",
        "charts/score_vs_tokens": "wandb/scatter/v0",
    }
    bar = run["tables"]["charts/score_table"]
    assert any(r["reference"] for r in bar)


def test_study_run_has_job_type_tags_notes_and_finished_state(study):
    _, _, run = study
    assert run["job_type"] == "study" and run["state"] == "finished"
    assert {"gsm8k", "smollm2-135m-instruct", "self_moa"} <= set(run["tags"])
    assert "self_moa" in run["notes"] and "gsm8k" in run["notes"]
    assert "gsm8k/acc" in run["summary"] and "baseline/gsm8k/acc" in run["summary"]


def test_summary_table_is_printed_once_and_kept_in_run_log(study):
    run_dir, proc, _ = study
    assert proc.stdout.count("oracle (best proposal)") == 1
    assert "oracle (best proposal)" in (run_dir / "run.log").read_text()


def test_sweep_points_have_distinct_names_dirs_and_one_group(sweep):
    sweep_dir, _, runs = sweep
    points = [r for r in runs if r["job_type"] == "study"]
    assert len(points) == 4
    names = {r["name"] for r in points}
    assert len(names) == 4
    assert any(n.endswith("[method.k=2,method.temperature=0.5]") for n in names)
    assert any(n.endswith("[method.k=2,method.temperature=0.7]") for n in names)
    assert len({r["group"] for r in runs}) == 1
    dirs = sorted(p.parent.name for p in sweep_dir.glob("*/metrics.json"))
    assert dirs[0] == "0_method.k=2,method.temperature=0.5" and len(dirs) == 4


def test_sweep_prints_writes_and_logs_one_table_across_points(sweep):
    sweep_dir, proc, runs = sweep
    table = (sweep_dir / "summary.txt").read_text()
    assert table.strip() in proc.stdout
    assert len(table.strip().splitlines()) == 2 + 4 * 2 + 1  # header, rule, 2 rows a point, note
    [summary] = [r for r in runs if r["job_type"] == "sweep"]
    assert len(summary["tables"]["sweep/results"]) == 8
    assert summary["charts"]["charts/score"] == "wandb/bar/v0"


@pytest.fixture(scope="module")
def sweep_twice(tmp_path_factory):
    """A 2-point sweep run twice, each time into a new sweep directory (as a plain rerun is)."""
    tmp = tmp_path_factory.mktemp("twice")
    for name in ("first", "second"):
        fake_run(tmp, "-m", "method.k=2,3", f"hydra.sweep.dir={tmp / name}")
    return tmp, [read_offline(f) for name in ("first", "second") for f in offline_runs(tmp / name)]


def test_a_sweep_run_twice_holds_one_run_per_point_not_two(sweep_twice):
    _, sweep_twice = sweep_twice
    studies = [r for r in sweep_twice if r["job_type"] == "study"]
    assert len(studies) == 4  # two offline folders per point...
    assert len({r["id"] for r in studies}) == 2  # ...of the same 2 W&B runs: a rerun resumes
    assert len({r["id"] for r in sweep_twice if r["job_type"] == "sweep"}) == 1


def test_each_point_has_truncation_outcome_columns_models_overrides_and_samples(sweep_twice):
    _, sweep_twice = sweep_twice
    for run in (r for r in sweep_twice if r["job_type"] == "study"):
        results = run["tables"]["results"]
        assert {"truncated_proposals", "truncated_aggregations"} <= set(results[0])
        assert all(r["outcome_ok"] == r["items"] for r in results)  # the fake engine's: all ok
        assert list(run["config"]["models"]) == ["smollm2-135m-instruct"]
        k = run["config"]["method"]["k"]
        assert f"method.k={k}" in run["config"]["overrides"]
        assert run["config"]["command"].startswith("python -m harness.run ")
        samples = run["tables"][f"samples/self_moa(k={k})"]
        assert len(samples) == 3 * k  # 3 items, a row per proposal
        assert samples[0]["proposal_answer"] is not None and samples[0]["final_answer"] is not None
        assert ".hydra/overrides.yaml" in run["artifacts"][f"run-{run['id']}"]


def test_cross_point_table_shows_each_points_work_and_benchmark(sweep_twice):
    from harness.sweep import cross_point_rows

    tmp, _ = sweep_twice
    first, second = cross_point_rows(tmp / "first"), cross_point_rows(tmp / "second")
    assert {r["benchmark"] for r in first + second} == {"gsm8k"}
    assert all(r["made"] > 0 and r["seconds"] > 0 for r in first if r["point"].startswith("0_"))
    assert all(r["made"] == 0 and r["seconds"] == 0 for r in second)  # all from the store
    table = (tmp / "second" / "summary.txt").read_text()
    assert table.count("0 (store)") == 4 and "everything came from the store" in table


def test_sample_rows_keep_whole_items_within_the_bound():
    from harness.dashboard import sample_rows
    from tests.conftest import typed

    proposal = {"model": "m", "text": "t", "prompt_tokens": 1, "generated_tokens": 1,
                "finish_reason": "stop", "answer": "1", "score": 1.0}  # fmt: skip
    records = [
        {"configuration": "c", "method": "self_moa", "item_id": f"i{i}", "turn": 1,
         "question": "q", "reference": "1", "rounds": [], "aggregation": None, "order": [],
         "events": [], "final_text": "1", "answer": "1", "score": 1.0, "judgment": None,
         "outcome": "ok", "error": None, "calls": 4, "prompt_tokens": 4, "generated_tokens": 4,
         "gen_s": 0.0, "proposals": [proposal | {"sample_index": j} for j in range(3)]}
        for i in range(10)
    ]  # fmt: skip
    rows = sample_rows(typed(records), limit=8)
    assert len(rows) == 6  # two whole items of 3 proposals; a third would pass 8
    assert sample_rows(typed(records), limit=2)[0]["item_id"] == rows[0]["item_id"]  # same order
    assert len(sample_rows(typed(records), limit=2)) == 3  # at least one whole item


def test_results_rows_keep_truncation_counts_when_the_summary_has_them():
    m = ConfigSummary(
        "self_moa", 3, 3, 0.5, 0.1, 0.9, 0.4, 0.6, 9, 90, 30, 1.0, Truncated(proposals=2), {}, {}
    )
    [row] = results_rows({"self_moa(k=2)": m})
    assert row["truncated_proposals"] == 2 and row["score"] == 0.5


def test_metrics_json_is_the_source_of_the_results_table(study):
    run_dir, _, run = study
    metrics = json.loads((run_dir / "metrics.json").read_text())
    expected = results_rows(read_summaries(metrics)[1])
    assert [r["score"] for r in run["tables"]["results"]] == [r["score"] for r in expected]


def test_agreement_mirror_is_a_run_of_job_type_agreement(tmp_path, monkeypatch):
    from harness.agreement import mirror
    from harness.plan import checked_run, compose

    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    run = checked_run(
        compose("benchmark=alpaca_eval", "benchmark.judge=smollm2-135m-instruct"), str(tmp_path)
    )
    run.logger.mode = "offline"
    mirror(run, {"all": {"pairs": 4, "agreement": 0.75, "ci": [0.3, 0.95]}})
    [folder] = offline_runs(tmp_path)
    got = read_offline(folder)
    assert got["job_type"] == "agreement" and "agreement" in got["tags"]
    assert got["tables"]["agreement"] == [{"model": "all", "pairs": 4, "agreement": 0.75}]
