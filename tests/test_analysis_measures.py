"""Quality measures, NaN-safe fits, compute-matched comparison, bootstrap intervals and the W&B
charts of the analysis, on synthetic records (tests/test_analyze.py builds them)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
from test_analyze import FakeEmbedder, study_records, write_run

from harness.analysis.compare import bootstrap_ci, pareto_front
from harness.analysis.mirror import charts
from harness.analysis.pipeline import analyze
from harness.analysis.quality import QUALITY_MEASURES, centered_norm, k_norm

METHODS = ["self_moa", "mixed_moa"]


def test_k_norm_of_one_model_is_its_quality_for_every_k():
    for k in (1, 2, 3, 4):
        assert k_norm({"a": 40.0}, {"a": 6}, k) == pytest.approx(40.0)
        assert centered_norm({"a": 40.0}, {"a": 6}, k) == pytest.approx(40.0)


def test_k_norm_weighs_models_by_multiplicity_and_moves_towards_the_best_with_k():
    qualities = {"i": 80.0, "d": 20.0}
    assert k_norm(qualities, {"i": 2, "d": 4}, 1) == pytest.approx(40.0)
    assert k_norm(qualities, {"i": 4, "d": 2}, 1) == pytest.approx(60.0)
    assert k_norm(qualities, {"i": 2, "d": 4}, 2) == pytest.approx(
        math.sqrt((2 * 6400 + 4 * 400) / 6)
    )
    values = [k_norm(qualities, {"i": 3, "d": 3}, k) for k in (1, 2, 3, 4)]
    assert values == sorted(values) and values[-1] < 80


def test_centered_norm_is_the_mean_at_k1_and_penalises_spread_more_with_k():
    even = {"i": 3, "d": 3}
    # K = 1: the plain (weighted) mean, as the paper's Table 5 K = 1 column
    assert centered_norm({"i": 80.0, "d": 20.0}, even, 1) == pytest.approx(50.0)
    assert centered_norm({"i": 80.0, "d": 20.0}, {"i": 2, "d": 4}, 1) == pytest.approx(40.0)
    # an even pair: distances 30 and 30, so mean - (1 - 1/K) * 30, towards the weaker member
    assert centered_norm({"i": 80.0, "d": 20.0}, even, 2) == pytest.approx(35.0)
    assert centered_norm({"i": 80.0, "d": 20.0}, even, 4) == pytest.approx(27.5)
    assert centered_norm({"i": 50.0, "d": 50.0}, even, 2) == pytest.approx(50.0)
    assert centered_norm({"i": 60.0, "d": 40.0}, even, 2) < 50.0
    assert math.isnan(k_norm({"i": float("nan")}, {"i": 6}, 2))


def test_pareto_front_keeps_what_nothing_cheaper_beats():
    costs = [1.0, 2.0, 2.0, 3.0, float("nan")]
    scores = [10.0, 30.0, 20.0, 25.0, 99.0]
    assert pareto_front(costs, scores) == [True, True, False, False, False]


def test_bootstrap_ci_brackets_the_mean_leaves_out_nan_and_is_a_point_without_spread():
    rng = np.random.default_rng(0)
    values = rng.normal(50, 10, size=40)
    lo, hi = bootstrap_ci(np.append(values, np.nan), 500, 0)
    assert lo < values.mean() < hi
    assert bootstrap_ci(np.full(5, 7.0), 500, 0) == (7.0, 7.0)
    assert bootstrap_ci(values, 0, 0) == (values.mean(), values.mean())


def test_report_has_table5_every_quality_measure_and_the_compute_matched_table(tmp_path):
    run = write_run(tmp_path / "run", study_records())
    results = analyze(run, FakeEmbedder(tmp_path / "cache"), METHODS, False, 20, 0)
    bench = results["benchmarks"]["gsm8k"]
    assert set(bench["fits"]) == set(QUALITY_MEASURES)
    self_q = bench["configurations"]["self_moa(q)"]
    assert self_q["knorm3"] == pytest.approx(self_q["q"]) == pytest.approx(self_q["centered2"])
    mix = bench["configurations"]["mixed_moa(qqqsss)"]
    assert mix["mix"] == {"strong": 3, "weak": 3}
    assert mix["knorm1"] == pytest.approx(mix["q"])
    assert mix["centered1"] == pytest.approx(mix["knorm1"])  # K = 1: the mean
    assert mix["centered2"] < mix["knorm1"] < mix["knorm4"]
    report = (run / "report.md").read_text()
    assert "| quality measure | K = 1 | K = 2 | K = 3 | K = 4 |" in report
    assert "| Centered-1/K-Norm (our construction) |" in report
    assert "knorm_K = (Σ_m w_m Q_m^K / Σ_m w_m)^(1/K)" in report
    assert "### Compute-matched comparison" in report and "](cost_gsm8k.png)" in report
    rows = bench["compute_matched"]
    assert len(rows) == len(bench["configurations"])
    assert any(r["front_tokens"] for r in rows) and any(r["front_calls"] for r in rows)
    assert (run / "cost_gsm8k.png").read_bytes()[:4] == b"\x89PNG"


def test_unscored_items_are_counted_and_a_configuration_without_scores_leaves_the_fit(
    tmp_path, caplog
):
    records = study_records()
    for r in records:
        if r["configuration"] == "mixed_moa(qqqsss)":
            r["score"] = None  # every judge reply unreadable
        if r["configuration"] == "mixed_moa(qqqqss)" and r["item_id"] == "i0":
            r["score"] = None
            r["proposals"][0]["score"] = None
    run = write_run(tmp_path / "run", records)
    with caplog.at_level(logging.WARNING):
        results = analyze(run, FakeEmbedder(tmp_path / "cache"), METHODS, False, 20, 0)
    bench = results["benchmarks"]["gsm8k"]
    assert "mixed_moa(qqqsss) dropped from the fit: no scored item" in caplog.text
    assert bench["dropped_from_fit"] == {"mixed_moa(qqqsss)": "no scored item"}
    assert bench["fits"]["q"]["n"] == 27
    assert all(math.isfinite(f["r2"]) for f in bench["fits"].values())
    assert bench["fits"]["q"]["diff_ci"] is not None
    partial = bench["configurations"]["mixed_moa(qqqqss)"]
    assert (partial["unscored_items"], partial["unscored_proposals"]) == (1, 1)
    assert math.isfinite(partial["t"])
    assert bench["configurations"]["mixed_moa(qqqsss)"]["unscored_items"] == 8
    report = (run / "report.md").read_text()
    assert "Dropped from the fit: `mixed_moa(qqqsss)` (no scored item)" in report
    assert "| 8 (1) |" in report
    json.loads((run / "analysis.json").read_text())  # NaN-free enough to parse back


def test_wandb_charts_are_native_tables_line_series_and_scatter(tmp_path):
    wandb = pytest.importorskip("wandb")
    run = write_run(tmp_path / "run", study_records(items=4))
    results = analyze(run, FakeEmbedder(tmp_path / "cache"), METHODS, False, 0, 0)
    out = charts(wandb, "gsm8k", results["benchmarks"]["gsm8k"])
    assert isinstance(out["gsm8k/configurations"], wandb.Table)
    assert isinstance(out["gsm8k/compute_matched"], wandb.Table)
    for key in ("gsm8k/qd", "gsm8k/k_scaling", "gsm8k/t_vs_tokens"):
        assert type(out[key]).__name__ == "CustomChart", key
    assert out["gsm8k/qd"].spec.fields == {"x": "q", "y": "d", "color": "t"}
    assert out["gsm8k/qd"].table.columns == ["configuration", "kind", "q", "d", "t"]


def test_mirror_logs_an_analysis_job_with_tables_charts_and_images(tmp_path, monkeypatch):
    """Real offline W&B, read back with W&B's own reader; a second analysis resumes the run."""
    from harness.analysis.mirror import mirror
    from harness.dashboard import offline_runs, read_offline

    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    run = write_run(tmp_path / "run", study_records(items=4))
    results = analyze(run, FakeEmbedder(tmp_path / "cache"), METHODS, False, 0, 0)
    mirror(run, results, "offline")
    [folder] = offline_runs(run)
    got = read_offline(folder)
    assert got["job_type"] == "analysis" and got["group"] == "test" and got["state"] == "finished"
    assert {"gsm8k/configurations", "gsm8k/regression", "gsm8k/compute_matched"} <= set(
        got["tables"]
    )
    assert got["charts"]["gsm8k/qd"] == "wandb/scatter/v0"
    assert got["charts"]["gsm8k/k_scaling"] == "wandb/lineseries/v0"
    assert got["charts"]["gsm8k/t_vs_tokens"] == "wandb/scatter/v0"
    assert "plots/qd_gsm8k" in got["summary"]
    fit = results["benchmarks"]["gsm8k"]["fits"]["knorm2"]["r2"]
    assert got["summary"]["gsm8k/fit_knorm2/r2"] == pytest.approx(fit)
    mirror(run, results, "offline")  # analysed again: the same W&B run, not a second one
    assert len({read_offline(f)["id"] for f in offline_runs(run)}) == 1


def test_records_without_the_schema_fields_are_skipped_and_counted(tmp_path, caplog):
    records = study_records(items=4)
    del records[0]["turn"]
    run = write_run(tmp_path / "run", records)
    (run / "records.jsonl").write_text((run / "records.jsonl").read_text() + '{"torn": \n')
    with caplog.at_level(logging.WARNING):
        results = analyze(run, FakeEmbedder(tmp_path / "cache"), METHODS, False, 0, 0)
    assert "2 bad lines of records.jsonl skipped" in caplog.text
    assert f"{run / 'records.jsonl'}:1: not a record" in caplog.text
    assert "not JSON (torn or corrupted)" in caplog.text
    assert results["benchmarks"]["gsm8k"]["configurations"]["self_moa(q)"]["items"] == 3


def test_golden_records_of_every_method_are_read_through_the_schema(tmp_path):
    golden = Path(__file__).parent / "data" / "golden" / "records_gsm8k.jsonl"
    run = tmp_path / "run"
    run.mkdir()
    (run / "records.jsonl").write_text(golden.read_text())
    (run / "metrics.json").write_text(json.dumps({"benchmark": "gsm8k", "metric": "acc"}))
    results = analyze(run, FakeEmbedder(tmp_path / "cache"), METHODS, True, 0, 0)
    bench = results["benchmarks"]["gsm8k"]
    assert len(bench["configurations"]) == 13
    assert bench["configurations"]["mixed_moa(ssb)"]["mix"] == {"big": 1, "small": 2}
    seq = bench["configurations"]["self_moa_seq(k=5)"]
    assert (seq["calls"], seq["k"]) == (7.0, 5)
    assert {r["label"] for r in bench["compute_matched"]} == set(bench["configurations"])


def test_the_fit_takes_one_aggregator_unless_asked_and_the_report_states_n(tmp_path):
    records = study_records()
    final = {"model": "other-aggregator", "mode": "layers", "layer": 1, "text": "x",
             "prompt_tokens": 1, "generated_tokens": 1, "finish_reason": "stop"}  # fmt: skip
    again = [{**r, "configuration": r["configuration"] + " agg2", "aggregation": final,
              "rounds": [final]} for r in records]  # fmt: skip
    run = write_run(tmp_path / "run", records + again)
    one = analyze(run, FakeEmbedder(tmp_path / "c"), METHODS, False, draws=0, seed=0)
    bench = one["benchmarks"]["gsm8k"]
    assert bench["fits"]["q"]["n"] == 28  # the same proposals under a second aggregator: once
    assert bench["fit_aggregators"] == ["None"]
    assert "N = 28 configurations" in (run / "report.md").read_text()
    assert "`--all-aggregators` keeps every one" in (run / "report.md").read_text()
    every = analyze(run, FakeEmbedder(tmp_path / "c"), METHODS, False, 0, 0, all_aggregators=True)
    assert every["benchmarks"]["gsm8k"]["fits"]["q"]["n"] == 56
