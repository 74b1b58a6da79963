"""One analysis: load the runs, measure every configuration, fit, compare, plot, write.

`analyze(path, ...)` writes report.md, analysis.json and the PNGs into `path` and returns the
results (the content of analysis.json), which harness.analysis.mirror logs to W&B.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

from harness.analysis import plots
from harness.analysis.compare import baselines, compare_self_mixed, compute_matched, k_lines
from harness.analysis.diversity import Embedder
from harness.analysis.fits import fit_benchmark, fittable, regression_set
from harness.analysis.measure import MEASURES, Point, find_runs, load_run, points, short_label
from harness.analysis.paper import score_tables, table3
from harness.analysis.paper_fits import fit_tables
from harness.analysis.regression import FitError
from harness.analysis.report import report

log = logging.getLogger(__name__)


def describe(p: Point, in_fit: bool) -> dict:
    """The analysis.json entry of one configuration."""
    model_level = {k: v for k, v in p.quality().items() if k not in MEASURES}
    return {
        "method": p.method,
        "kind": p.kind,
        "k": p.k,
        "mix": p.mix,
        "items": len(p.per_item),
        "unscored_items": p.unscored,
        "unscored_proposals": p.unscored_proposals,
        "in_fit": in_fit,
        **{m: p.mean(m) for m in MEASURES},
        **model_level,
    }


def t_axis(bench: str, metric: str) -> str:
    """The name of t on a plot's axis: the benchmark's metric; acc and win_rate are shown in
    percent, a rating (MT-Bench's `score`) on its own scale."""
    return f"t: {bench}/{metric}" + (" (%)" if metric != "score" else "")


def analyze_benchmark(
    bench: str, mine: list[Point], metric: str, methods: list[str], all_k: bool,
    draws: int, seed: int, path: Path, all_aggregators: bool = False,
) -> tuple[dict, list[Path]]:  # fmt: skip
    chosen, dropped = fittable(regression_set(mine, methods, all_k, all_aggregators))
    fitted = {id(p) for p in chosen}
    images = []
    out: dict = {
        "metric": f"{bench}/{metric}",
        "configurations": {p.label: describe(p, id(p) in fitted) for p in mine},
        "dropped_from_fit": dropped,
        "fit_aggregators": sorted({str(p.aggregator) for p in chosen}),
    }
    try:
        fits, refused = fit_benchmark(chosen, draws, seed)
        out["fits"] = {q: asdict(f) for q, f in fits.items()}
        out["fit_refused"] = refused
    except FitError as e:  # a study too small (or too uniform) for a fit: said, not fatal
        log.warning("%s: no regression: %s", bench, e)
        out["fit_error"] = str(e)
    out["fit_ks"] = sorted({p.k for p in chosen})
    shown = [p for p in mine if p.method in methods and p.kind != "none"]
    out["qd"] = [
        {"label": p.label, "short": short_label(p), "kind": p.kind, "k": p.k,
         "in_fit": id(p) in fitted, "q": p.mean("q"), "d": p.mean("d"), "t": p.mean("t")}
        for p in shown
    ]  # fmt: skip
    axis = t_axis(bench, metric)
    if out["qd"]:
        images.append(plots.qd_plane(out["qd"], bench, path / f"qd_{bench}.png", axis))
    comparison = compare_self_mixed(chosen, draws, seed)
    if comparison:
        out["self_vs_mixed"] = comparison
    out["k_lines"] = k_lines(mine, draws, seed)
    out["baselines"] = baselines(mine, draws, seed)
    if out["k_lines"]:
        images.append(plots.score_vs_k(
            out["k_lines"], out["baselines"], bench, path / f"k_{bench}.png", axis))  # fmt: skip
    out["compute_matched"] = compute_matched(mine)
    if out["compute_matched"]:
        images.append(plots.compute_matched(
            out["compute_matched"], bench, path / f"cost_{bench}.png", axis))  # fmt: skip
    return out, images


def analyze(
    path: Path, embedder: Embedder, methods: list[str], all_k: bool, draws: int, seed: int,
    all_aggregators: bool = False,
) -> dict:  # fmt: skip
    """Measure, fit, plot and write report.md + analysis.json into `path`; returns the results."""
    runs = [load_run(p) for p in find_runs(path)]
    found = points(runs, embedder)
    print(f"embeddings: found {embedder.found}, computed {embedder.computed}"
          + (f" ({embedder.chunked} long texts embedded whole, in windows)"
             if embedder.chunked else ""))  # fmt: skip
    results: dict = {
        "path": str(path),
        "runs": [str(r.path) for r in runs],
        "embedding_model": embedder.model,
        "long_texts": embedder.long_texts,
        "logger": runs[0].logger,
        "methods": methods,
        "all_k": all_k,
        "all_aggregators": all_aggregators,
        "benchmarks": {},
    }
    images: list[Path] = []
    for bench in sorted({p.benchmark for p in found}):
        metric = next(r.metric for r in runs if r.benchmark == bench)
        mine = [p for p in found if p.benchmark == bench]
        out, more = analyze_benchmark(
            bench, mine, metric, methods, all_k, draws, seed, path, all_aggregators
        )
        results["benchmarks"][bench] = out
        images += more
    bars = {b: o["self_vs_mixed"]["bars"] for b, o in results["benchmarks"].items()
            if "self_vs_mixed" in o}  # fmt: skip
    if bars:
        metrics = {b: results["benchmarks"][b]["metric"].split("/", 1)[1] for b in bars}
        axis = t_axis(*next(iter(metrics.items()))) if len(bars) == 1 else "t"
        images.append(plots.self_vs_mixed(bars, path / "self_vs_mixed.png", axis))
    layout = table3(found, runs, results["benchmarks"], draws, seed)
    if layout:
        results["table3"] = layout
    results["paper_tables"] = {
        name: t for name in score_tables(runs)
        if (t := table3(found, runs, results["benchmarks"], draws, seed, name))
    }  # fmt: skip
    results["paper_fits"] = fit_tables(runs, results["benchmarks"])
    results["images"] = [str(p) for p in images]
    results["embeddings"] = {"found": embedder.found, "computed": embedder.computed}
    (path / "analysis.json").write_text(json.dumps(results, indent=2) + "\n")
    (path / "report.md").write_text(report(results))
    return results
