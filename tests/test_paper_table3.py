"""The Table 3 reproduction report (harness.analysis.paper) on a study whose scores are the
paper's Table 3: it must give back the published Average, WeightedAvg and headline, with every
published cell inside our interval ("matches"); and on a study that differs, say so."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_analyze import FakeEmbedder

from harness.analysis.paper import verdict
from harness.analysis.paper_claims import claim_verdict
from harness.analysis.pipeline import analyze

CONF = Path(__file__).resolve().parents[1] / "conf"
PAPER = yaml.safe_load((CONF / "experiment" / "paper_table3.yaml").read_text())["paper"]
LETTERS = yaml.safe_load((CONF / "config.yaml").read_text())["letters"]
BENCHES = PAPER["table3"]["benchmarks"]  # paper column -> benchmark
ITEMS = 20

# Rows of the preset (labels as harness.plan derives them): (label, method, proposers,
# aggregator, MMLU, CRUX, MATH). Cells the paper does not publish (a Self row of a model that is
# not the task's best) get made-up values; they have no published number to match.
ROWS = [
    ("single", "single", "", "i", 66.16, 36.25, 53.81),
    ("single(d)", "single", "", "d", 60.91, 49.51, 53.82),
    ("single(m)", "single", "", "m", 54.36, 27.88, 69.57),
    *[
        (
            f"mixed_moa({r['proposers']})",
            "mixed_moa",
            r["proposers"],
            "i",
            r["MMLU"],
            r["CRUX"],
            r["MATH"],
        )
        for r in PAPER["table3"]["rows"]
        if len(set(r["proposers"])) > 1 and r["proposers"] != "taskbest"
    ],  # fmt: skip
    ("self_moa(k=6)", "self_moa", "iiiiii", "i", 69.01, 40.00, 58.00),
    ("self_moa(m,k=6,agg=i)", "self_moa", "mmmmmm", "i", 57.00, 30.00, 68.42),
    ("self_moa(d,k=6,agg=i)", "self_moa", "dddddd", "i", 65.23, 50.75, 63.08),
    ("self_moa(m,k=6)", "self_moa", "mmmmmm", "m", 56.00, 29.00, 69.80),
    ("self_moa(d,k=6)", "self_moa", "dddddd", "d", 62.00, 52.62, 58.00),
]


def generation(model: str, text: str, mode: str) -> dict:
    return {"model": model, "mode": mode, "layer": 1, "text": text, "prompt_tokens": 50,
            "generated_tokens": 20, "finish_reason": "stop"}  # fmt: skip


def item_scores(value: float, row: int) -> np.ndarray:
    """ITEMS scores with mean exactly value/100: a difficulty shared by every row (so rows
    agree item by item, as real configurations do) plus a little noise of the row's own."""
    difficulty = np.linspace(-0.25, 0.25, ITEMS)
    own = np.random.default_rng(row).normal(0, 0.003, ITEMS)
    scores = value / 100 + difficulty + own - own.mean()
    assert (scores > 0).all() and (scores < 1).all()
    return scores


def write_study(sweep: Path, rows=ROWS, single_as_recorded: bool = False) -> Path:
    """`single_as_recorded`: the greedy rows as a run records them (one proposal, the model's
    greedy answer, no round), not as rows without proposals."""
    for n, (column, bench) in enumerate(BENCHES.items()):
        records = []
        for r, (label, method, proposers, agg, *values) in enumerate(rows):
            value = values[list(BENCHES).index(column)]
            scores = item_scores(value, r * 7 + n)
            for i, score in enumerate(scores):
                proposals = [
                    {"model": LETTERS[letter], "sample_index": j,
                     "text": f"{letter} says {i % 3} {j % 2}", "prompt_tokens": 10,
                     "generated_tokens": 20, "finish_reason": "stop", "answer": str(i % 3),
                     "score": float(score)}
                    for j, letter in enumerate(proposers or (agg if single_as_recorded else ""))
                ]  # fmt: skip
                final = generation(
                    LETTERS[agg], f"final {label} {i}", "layers" if proposers else ""
                )
                rounds = [] if single_as_recorded and not proposers else [final]
                records.append({
                    "configuration": label, "method": method, "item_id": f"{bench}-{i}",
                    "turn": 1, "question": "?", "reference": "1", "proposals": proposals,
                    "rounds": rounds, "aggregation": rounds[0] if rounds else None,
                    "order": list(range(len(proposals))),
                    "events": [], "final_text": final["text"], "answer": "1",
                    "score": float(score), "judgment": None, "outcome": "ok", "error": None,
                    "calls": len(proposals) + 1, "prompt_tokens": 100,
                    "generated_tokens": 20 * len(proposals) + 20, "gen_s": 0.0,
                })  # fmt: skip
        run = sweep / f"{n}_benchmark={bench}"
        run.mkdir(parents=True)
        (run / "records.jsonl").write_text("".join(json.dumps(x) + "\n" for x in records))
        (run / "metrics.json").write_text(json.dumps({"benchmark": bench, "metric": "acc"}))
        config = {"letters": LETTERS, "paper": PAPER, "logger": {"group": "test"}}
        (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return sweep


def published(proposers: str, aggregator) -> dict:
    return next(
        r for r in PAPER["table3"]["rows"]
        if (r["proposers"], r["aggregator"]) == (proposers, aggregator)
    )  # fmt: skip


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    sweep = write_study(tmp_path_factory.mktemp("table3") / "sweep")
    cache = tmp_path_factory.mktemp("cache")
    results = analyze(sweep, FakeEmbedder(cache), [], False, draws=400, seed=0)
    return sweep, results


def test_the_paper_scores_reproduce_its_averages_and_headline(reproduced):
    _, results = reproduced
    t = results["table3"]
    assert t["benchmarks"] == list(BENCHES.values())
    assert t["taskbest"] == dict(zip(BENCHES.values(), ["i", "d", "m"], strict=True))
    assert t["best_mixture"] == "mixed_moa(mmmddd)"
    rows = {r["label"]: r for r in t["rows"]}
    checked = 0
    for r in t["rows"]:
        if "paper" not in r:
            continue
        for name in ("Average", "WeightedAvg"):
            assert r["cells"][name]["value"] == pytest.approx(r["paper"][name], abs=0.01), (
                r["label"], name)  # fmt: skip
        checked += 1
    assert checked == len(PAPER["table3"]["rows"])  # every published row found, TaskBest too
    best = rows["TaskBest x6, self-aggregated"]
    assert best["sources"] == {"mmlu_redux": "self_moa(k=6)", "cruxeval": "self_moa(d,k=6)",
                               "math500": "self_moa(m,k=6)"}  # fmt: skip
    headline = best["cells"]["Diff"]["value"]
    assert headline == pytest.approx(63.81 - 60.04, abs=0.01)
    assert round(headline, 1) == 3.8
    with_i = rows["TaskBest x6, aggregator i"]["cells"]["Diff"]["value"]
    assert round(with_i, 1) == 2.7
    assert rows["mixed_moa(mmmddd)"]["cells"]["Average"]["value"] == pytest.approx(60.04, abs=0.01)


def test_every_published_cell_and_every_measurable_claim_matches(reproduced):
    sweep, results = reproduced
    t = results["table3"]
    verdicts = [v for r in t["rows"] for v in r.get("verdicts", {}).values()]
    # 19 published rows x (3 tasks, Average, WeightedAvg, Diff to the best mixture)
    assert len(verdicts) == 19 * 6
    assert set(verdicts) == {"matches"}
    claims = {c["claim"]: c for c in t["claims"]}
    measured = [c for c in claims.values() if c["verdict"] != "not measured"]
    assert len(measured) == 4 and {c["verdict"] for c in measured} == {"matches"}
    for c in measured:
        assert c["ours"] == pytest.approx(c["paper"], abs=0.01)
    # no fit was asked for, no sequential row is in Table 3: said, not guessed
    unmeasured = {c["kind"] for c in claims.values() if c["verdict"] == "not measured"}
    assert unmeasured == {"alpha_beta", "sequential"}
    report = (sweep / "report.md").read_text()
    assert "## Table 3 (with Tables 6 and 11)" in report
    assert "Published cells against our intervals: 114 matches." in report
    assert (
        "TaskBest (the best model alone) per task: mmlu_redux → i, cruxeval → d, math500 → m"
        in (report)
    )
    assert "| `TaskBest x6, self-aggregated` | TaskBest | 69.01 [" in report
    assert "· paper 63.81 (matches)" in report
    assert "(the headline, +3.8): **matches** (ours +3.77 [" in report
    assert "### Paired differences to the best mixture (`mixed_moa(mmmddd)`)" in report


def test_a_study_that_differs_gets_other_verdicts(tmp_path):
    # the best mixture 10 points worse on MATH than published, the alone rows as published
    keep = ("single", "single(d)", "single(m)", "mixed_moa(mmmddd)", "mixed_moa(mmdddd)",
            "self_moa(d,k=6,agg=i)")  # fmt: skip
    rows = [(*r[:6], r[6] - 10) if r[0] == "mixed_moa(mmmddd)" else r
            for r in ROWS if r[0] in keep]  # fmt: skip
    sweep = write_study(tmp_path / "sweep", rows)
    t = analyze(sweep, FakeEmbedder(tmp_path / "c"), [], False, draws=400, seed=0)["table3"]
    row = next(r for r in t["rows"] if r["label"] == "mixed_moa(mmmddd)")
    assert row["verdicts"]["math500"] == "above"  # the paper's 67.32 above our interval
    assert row["verdicts"]["mmlu_redux"] == "matches"
    assert t["best_mixture"] == "mixed_moa(mmdddd)"  # ours is no longer the best
    claims = {c["claim"][:60]: c["verdict"] for c in t["claims"]}
    table6 = [v for c, v in claims.items() if "mmmddd above" in c]
    assert table6 == ["contradicts"]  # mmmddd now clearly below dddddd


def test_verdicts_on_intervals():
    assert verdict(5.0, (4.0, 6.0)) == "matches"
    assert verdict(7.0, (4.0, 6.0)) == "above"
    assert verdict(3.0, (4.0, 6.0)) == "below"
    assert verdict(None, (4.0, 6.0)) is None
    assert claim_verdict(1.0, (0.5, 1.5), "greater") == "matches"
    assert claim_verdict(1.0, (-0.5, 2.5), "greater") == "inconclusive"
    assert claim_verdict(-1.0, (-2.0, -0.5), "greater") == "contradicts"
    assert claim_verdict(0.2, (-0.5, 0.9), "no_worse") == "matches"
    assert claim_verdict(-0.2, (-0.9, 0.5), "no_worse") == "inconclusive"
    assert claim_verdict(-1.0, (-2.0, -0.5), "no_worse") == "contradicts"
    assert claim_verdict(float("nan"), (0, 0), "no_worse") == "not measured"


def test_taskbest_reads_the_greedy_rows_as_runs_record_them(tmp_path):
    """A run records `single` as one greedy proposal and no round: TaskBest is still the model
    whose greedy answer scores highest, here m on MMLU (its proposals elsewhere score lower than
    i's, so a choice by proposal quality would say i)."""
    rows = [("single(m)", "single", "", "m", 70.0, 27.88, 69.57) if r[0] == "single(m)" else r
            for r in ROWS]  # fmt: skip
    sweep = write_study(tmp_path / "sweep", rows, single_as_recorded=True)
    results = analyze(sweep, FakeEmbedder(tmp_path / "cache"), [], False, draws=50, seed=0)
    assert results["table3"]["taskbest"] == dict(zip(BENCHES.values(), "mdm", strict=True))
