"""Quality versus diversity of a study's proposals, from its run directories; nothing regenerated.

Usage:
    python -m harness.analyze RUN_DIR                 # one run (a study of many configurations)
    python -m harness.analyze runs/multirun/DATE/TIME # a sweep: every run directory below it
    python -m harness.analyze RUN_DIR --embedding-model sentence-transformers/all-mpnet-base-v2 \
        --device cuda --bootstrap 2000 --no-wandb

Per configuration (a label in records.jsonl; the same label in two runs of one benchmark is
kept once when its records are identical, else suffixed with the run's Hydra overrides), with
every value computed per record (an item, or an item's turn), averaged per item, then over items:
  t    the ensemble's final score (the headline metric: accuracy, win rate, rating), in percent
       when a run's scores lie in [0, 1], else on the benchmark's own scale (MT-Bench 1-10);
  q    the mean score of its proposals, on the same scale;
  q_K  K-norm quality, K = 1..4: the power mean (mean_i s_i^K)^(1/K) of the item's proposal
       scores s_i, on the same scale. q_1 = q; as K grows
       q_K moves from the mean towards the best proposal, so it rewards an item having one
       strong proposal (the paper's exact formula was not recovered; this is ours);
  d    the Vendi score of the proposals' sentence embeddings (cosine kernel, harness.diversity);
  d_ngram   the Vendi score over word 1-2-gram counts (model-free cross-check);
  answers   the number of distinct extracted answers among the proposals, a missing answer
            counting as one more (the column is left out when no proposal has an answer).
Then, per benchmark, the regression t = alpha*q + beta*d + gamma (harness.regression) over the
configurations of the methods in --methods that have the most common number of proposals (the
Vendi score ranges over 1..k, so points with other k are not comparable), Self-MoA (one proposer
model) against Mixed-MoA, and t against k and tokens for Self-MoA and Self-MoA-Seq.

Writes, in the analysed directory: report.md, analysis.json, qd_<benchmark>.png,
self_vs_mixed.png, k_<benchmark>.png; mirrors the tables and images to W&B (offline by
default, in the runs' group). Embeddings are cached (harness.diversity), so a second analysis
computes none: it prints "embeddings: found N, computed M".
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

from harness import plots
from harness.benchmarks.base import TURN_SUFFIX
from harness.diversity import DEFAULT_EMBEDDING_MODEL, Embedder, distinct_answers, ngram_vendi
from harness.diversity import vendi_of as vendi
from harness.regression import Fit, FitError, fit, table4, with_bootstrap

log = logging.getLogger(__name__)

K_NORMS = (1, 2, 3, 4)
MEASURES = ("t", "q", "d", "d_ngram", "answers", "tokens") + tuple(f"q{k}" for k in K_NORMS[1:])


class AnalysisError(ValueError):
    """The directory cannot be analysed (and says why)."""


@dataclass
class Run:
    path: Path
    benchmark: str
    metric: str  # headline metric name: acc, win_rate or score
    overrides: str  # Hydra overrides of the run, to tell apart same-named configurations
    logger: dict
    records: list[dict]


@dataclass
class Configuration:
    label: str
    benchmark: str
    method: str
    run: str
    kind: str  # "self" (one proposer model), "mixed" (several) or "none" (no proposals)
    models: list[str]
    k: int  # proposals per record (the most common count)
    per_item: dict[str, dict[str, float]] = field(default_factory=dict)  # item -> measure

    def mean(self, measure: str, items: list[str] | None = None) -> float:
        values = [self.per_item[i][measure] for i in (items or self.per_item)]
        values = [v for v in values if v == v]  # drop NaN (no proposals, no answers)
        return float(np.mean(values)) if values else float("nan")


def find_runs(path: Path) -> list[Path]:
    """`path` itself when it is a run directory, else every run directory below it."""
    if not path.is_dir():
        raise AnalysisError(f"{path} is not a directory")
    if (path / "records.jsonl").exists():
        return [path]
    found = sorted(p.parent for p in path.rglob("records.jsonl") if "wandb" not in p.parts)
    if not found:
        raise AnalysisError(
            f"no records.jsonl in or below {path}: give a run directory (python -m harness.run "
            "writes one) or a multirun sweep directory holding run directories"
        )
    return found


def load_run(path: Path) -> Run:
    config = (
        yaml.safe_load((path / "config.yaml").read_text())
        if (path / "config.yaml").exists()
        else {}
    )
    metrics = (
        json.loads((path / "metrics.json").read_text()) if (path / "metrics.json").exists() else {}
    )
    benchmark = metrics.get("benchmark") or (config.get("benchmark") or {}).get("name")
    if not benchmark:
        raise AnalysisError(f"{path}: neither metrics.json nor config.yaml names the benchmark")
    overrides_file = path / ".hydra" / "overrides.yaml"
    overrides = (
        " ".join(yaml.safe_load(overrides_file.read_text()) or [])
        if overrides_file.exists()
        else path.name
    )
    records, torn = [], 0
    for line in (path / "records.jsonl").read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            torn += 1
    if torn:
        log.warning("%s: %d unreadable lines in records.jsonl skipped", path, torn)
    return Run(
        path=path,
        benchmark=benchmark,
        metric=metrics.get("metric", "acc"),
        overrides=overrides or path.name,
        logger=config.get("logger") or {},
        records=records,
    )


def power_mean(scores: list[float], k: int) -> float:
    """(mean s^k)^(1/k): the K-norm quality of one item's proposal scores (scores >= 0)."""
    if any(s < 0 for s in scores):
        raise AnalysisError(f"K-norm quality needs scores >= 0, got {min(scores)}")
    return float(np.mean(np.power(scores, k)) ** (1 / k))


def score_scale(records: list[dict]) -> float:
    """100 (percent) when every score lies in [0, 1], else 1 (a rating scale)."""
    scores = [r["score"] for r in records] + [p["score"] for r in records for p in r["proposals"]]
    return 100.0 if all(0 <= s <= 1 for s in scores if s is not None) else 1.0


def record_measures(r: dict, embeddings: dict[str, np.ndarray], scale: float) -> dict[str, float]:
    """Every measure of one record; NaN where it has no proposals or no extractable answer."""
    nan = float("nan")
    ps = r["proposals"]
    # a judge reply that could not be read scores None: left out, like metrics.summarize does
    scores = [float(p["score"]) for p in ps if p["score"] is not None]
    texts = [p["text"] for p in ps]
    answers = distinct_answers([p["answer"] for p in ps]) if ps else None
    out = {
        "t": nan if r["score"] is None else scale * float(r["score"]),
        "q": scale * float(np.mean(scores)) if scores else nan,
        "d": vendi(np.stack([embeddings[x] for x in texts])) if ps else nan,
        "d_ngram": ngram_vendi(texts) if ps else nan,
        "answers": nan if answers is None else float(answers),
        "tokens": float(r["generated_tokens"]),
    }
    for k in K_NORMS[1:]:
        out[f"q{k}"] = scale * power_mean(scores, k) if scores else nan
    return out


def configurations(runs: list[Run], embedder: Embedder) -> list[Configuration]:
    """One Configuration per (benchmark, label), with per-item measures."""
    embeddings = embedder.embed(
        [p["text"] for run in runs for r in run.records for p in r["proposals"]]
    )
    confs: dict[tuple[str, str], Configuration] = {}
    signatures: dict[tuple[str, str], tuple] = {}
    for run in runs:
        scale = score_scale(run.records)
        by_label: dict[str, list[dict]] = defaultdict(list)
        for r in run.records:
            by_label[r["configuration"]].append(r)
        for label, rs in by_label.items():
            signature = sorted(
                (str(r["item_id"]), str(r.get("turn")), r["final_text"] or "")
                + tuple(p["text"] for p in r["proposals"])
                for r in rs
            )
            key = (run.benchmark, label)
            if key in signatures:
                if signatures[key] == signature:
                    log.info(
                        "%s in %s repeats an identical configuration: kept once", label, run.path
                    )
                    continue
                label = f"{label} [{run.overrides}]"
                key = (run.benchmark, label)
            signatures[key] = signature
            models = sorted({p["model"] for r in rs for p in r["proposals"]})
            conf = Configuration(
                label=label,
                benchmark=run.benchmark,
                method=rs[0]["method"],
                run=str(run.path),
                kind={0: "none", 1: "self"}.get(len(models), "mixed"),
                models=models,
                k=Counter(len(r["proposals"]) for r in rs).most_common(1)[0][0],
            )
            per_record: dict[str, list[dict]] = defaultdict(list)
            for r in rs:  # the turns of a multi-turn item count as one item
                item = str(r["item_id"]).removesuffix(TURN_SUFFIX.format(r.get("turn", 1)))
                per_record[item].append(record_measures(r, embeddings, scale))
            conf.per_item = {
                item: {
                    m: float(np.nanmean([v[m] for v in vs]))
                    if any(v[m] == v[m] for v in vs)
                    else float("nan")
                    for m in MEASURES
                }
                for item, vs in per_record.items()
            }
            confs[key] = conf
    return list(confs.values())


def short_label(c: Configuration) -> str:
    return c.label.split("(")[-1].rstrip(")") if c.method == "mixed_moa" else c.label


def regression_set(
    confs: list[Configuration], methods: list[str], all_k: bool
) -> list[Configuration]:
    chosen = [c for c in confs if c.method in methods and c.kind != "none"]
    if chosen and not all_k:
        k = Counter(c.k for c in chosen).most_common(1)[0][0]
        dropped = [c.label for c in chosen if c.k != k]
        if dropped:
            log.info(
                "regression over k=%d configurations; not comparable, left out: %s", k, dropped
            )
        chosen = [c for c in chosen if c.k == k]
    return chosen


def common_items(confs: list[Configuration]) -> list[str]:
    items = set.intersection(*(set(c.per_item) for c in confs))
    if any(len(c.per_item) != len(items) for c in confs):
        log.warning("configurations cover different items: using the %d items all have", len(items))
    return sorted(items)


def item_array(
    confs: list[Configuration], items: list[str], measures: tuple[str, ...]
) -> np.ndarray:
    """(configurations, items, measures) array of per-item values."""
    return np.array([[[c.per_item[i][m] for m in measures] for i in items] for c in confs])


def bootstrap_ci(values: np.ndarray, draws: int, seed: int) -> tuple[float, float]:
    """95% percentile interval of the mean of `values` (per item) over item resamplings."""
    if draws <= 0 or len(values) < 2:
        return (float(values.mean()), float(values.mean()))
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (draws, len(values)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return (float(lo), float(hi))


def compare_self_mixed(chosen: list[Configuration], draws: int, seed: int) -> dict | None:
    """Self-MoA on the best model (highest q) vs the best mixture, with bootstrap intervals."""
    selfs = [c for c in chosen if c.kind == "self"]
    mixed = [c for c in chosen if c.kind == "mixed"]
    if not selfs or not mixed:
        return None
    items = common_items(selfs + mixed)
    best_model = max(selfs, key=lambda c: c.mean("q", items))
    best_self = max(selfs, key=lambda c: c.mean("t", items))
    best_mixed = max(mixed, key=lambda c: c.mean("t", items))
    t_best_model = item_array([best_model], items, ("t",))[0, :, 0]
    t_best_mixed = item_array([best_mixed], items, ("t",))[0, :, 0]
    bars = []
    for role, c in (
        ("Self-MoA, best model", best_model),
        ("best Self-MoA", best_self),
        ("best Mixed-MoA", best_mixed),
    ):
        if role == "best Self-MoA" and c is best_model:
            continue
        values = item_array([c], items, ("t",))[0, :, 0]
        bars.append(
            {
                "role": role,
                "label": c.label,
                "kind": c.kind,
                "t": float(values.mean()),
                "ci": bootstrap_ci(values, draws, seed),
            }
        )
    return {
        "bars": bars,
        "self_best_model": best_model.label,
        "best_mixture": best_mixed.label,
        "difference": float((t_best_model - t_best_mixed).mean()),
        "difference_ci": bootstrap_ci(t_best_model - t_best_mixed, draws, seed),
        "mixtures_beaten": sum(best_model.mean("t", items) > c.mean("t", items) for c in mixed),
        "mixtures_tied": sum(best_model.mean("t", items) == c.mean("t", items) for c in mixed),
        "mixtures": len(mixed),
        "items": len(items),
    }


def k_lines(confs: list[Configuration]) -> dict[str, list[dict]]:
    lines: dict[str, list[dict]] = defaultdict(list)
    for c in confs:
        if c.method in ("self_moa", "self_moa_seq") and c.kind == "self":
            lines[f"{c.method} ({c.models[0].split(':')[-1][:28]})"].append(
                {"k": c.k, "t": c.mean("t"), "tokens": c.mean("tokens")}
            )
    return {name: rows for name, rows in lines.items() if len(rows) >= 1}


def fmt(x: float, digits: int = 1) -> str:
    return "–" if x != x else f"{x:.{digits}f}"


def configuration_table(confs: list[Configuration], chosen: list[Configuration]) -> str:
    columns = [  # (header, measure, digits)
        ("t", "t", 1),
        ("q", "q", 1),
        ("q_2", "q2", 1),
        ("q_3", "q3", 1),
        ("q_4", "q4", 1),
        ("d (Vendi)", "d", 2),
        ("d (n-gram Vendi)", "d_ngram", 2),
        ("distinct answers", "answers", 2),
        ("gen tok/item", "tokens", 0),
    ]
    if all(c.mean("answers") != c.mean("answers") for c in confs):  # no extractable answers
        columns = [col for col in columns if col[1] != "answers"]
    head = ["configuration", "method", "kind", "k", "items", *(h for h, _, _ in columns), "in fit"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in sorted(confs, key=lambda c: -c.mean("t")):
        cells = [c.label, c.method, c.kind, c.k, len(c.per_item)]
        cells += [fmt(c.mean(m), digits) for _, m, digits in columns]
        cells.append("yes" if c in chosen else "")
        rows.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(rows)


def fit_benchmark(chosen: list[Configuration], draws: int, seed: int) -> dict[str, Fit]:
    """The regression with q, then with each K-norm q_K in its place; bootstrap on the first."""
    items = common_items(chosen)
    fits = {}
    for quality in ("q",) + tuple(f"q{k}" for k in K_NORMS[1:]):
        per_item = item_array(chosen, items, ("t", quality, "d"))
        t, q, d = per_item.mean(axis=1).T
        result = fit(t, q, d, warn=quality == "q")
        fits[quality] = with_bootstrap(result, per_item, draws, seed) if quality == "q" else result
    return fits


def analyze(
    path: Path, embedder: Embedder, methods: list[str], all_k: bool, draws: int, seed: int
) -> dict:
    """Measure, fit, plot and write report.md + analysis.json into `path`; returns the results."""
    runs = [load_run(p) for p in find_runs(path)]
    confs = configurations(runs, embedder)
    print(f"embeddings: found {embedder.found}, computed {embedder.computed}")
    benchmarks = sorted({c.benchmark for c in confs})
    results: dict = {
        "path": str(path),
        "runs": [str(r.path) for r in runs],
        "embedding_model": embedder.model,
        "logger": runs[0].logger,
        "benchmarks": {},
    }
    images: list[Path] = []
    bars = {}
    for bench in benchmarks:
        mine = [c for c in confs if c.benchmark == bench]
        chosen = regression_set(mine, methods, all_k)
        metric = next(r.metric for r in runs if r.benchmark == bench)
        out: dict = {
            "metric": f"{bench}/{metric}",
            "configurations": {
                c.label: {
                    "method": c.method,
                    "kind": c.kind,
                    "k": c.k,
                    "items": len(c.per_item),
                    "in_fit": c in chosen,
                    **{m: c.mean(m) for m in MEASURES},
                }
                for c in mine
            },
        }
        try:
            out["fits"] = {q: asdict(f) for q, f in fit_benchmark(chosen, draws, seed).items()}
        except FitError as e:
            log.error("%s: no regression: %s", bench, e)
            out["fit_error"] = str(e)
        if chosen:
            rows = [
                {
                    "q": c.mean("q"),
                    "d": c.mean("d"),
                    "t": c.mean("t"),
                    "kind": c.kind,
                    "short": short_label(c),
                }
                for c in chosen
            ]
            images.append(plots.qd_plane(rows, bench, path / f"qd_{bench}.png"))
        comparison = compare_self_mixed(chosen, draws, seed)
        if comparison:
            out["self_vs_mixed"] = comparison
            bars[bench] = comparison["bars"]
        lines = k_lines(mine)
        if lines:
            images.append(plots.score_vs_k(lines, bench, path / f"k_{bench}.png"))
        out["tables"] = {"configurations": configuration_table(mine, chosen)}
        results["benchmarks"][bench] = out
    if bars:
        images.append(plots.self_vs_mixed(bars, path / "self_vs_mixed.png"))
    results["images"] = [str(p) for p in images]
    results["embeddings"] = {"found": embedder.found, "computed": embedder.computed}
    (path / "analysis.json").write_text(json.dumps(results, indent=2) + "\n")
    (path / "report.md").write_text(report(results, methods, all_k))
    return results


def report(results: dict, methods: list[str], all_k: bool) -> str:
    out = [
        "# Quality versus diversity",
        "",
        f"Analysed: `{results['path']}` ({len(results['runs'])} run directories). "
        f"Embedding model: `{results['embedding_model']}`. Written by `python -m harness.analyze`.",
        "",
        "t: the ensemble's final score; q: mean proposal score; q_K: power mean of order K of "
        "an item's proposal scores; d: Vendi score of the proposals' sentence embeddings "
        "(cosine); n-gram Vendi over word 1-2-grams; distinct answers among the proposals. "
        "All per item, then averaged over items; scores in [0, 1] are shown in percent.",
        f"Regression: t = α·q + β·d + γ with q, d standardized over the configurations of "
        f"methods {', '.join(methods)}"
        + ("" if all_k else " with the most common number of proposals")
        + "; α, β in points of t per standard deviation; ± is the standard error (OLS).",
    ]
    for bench, b in results["benchmarks"].items():
        out += ["", f"## {bench} (t = `{b['metric']}`)", ""]
        if "fits" in b:
            fits = {
                (bench if q == "q" else f"{bench}, q_{q[1:]} in place of q"): Fit(
                    **{**f, "diff_ci": tuple(f["diff_ci"]) if f["diff_ci"] else None}
                )
                for q, f in b["fits"].items()
            }
            out += ["### Regression (Table 4 layout)", "", table4(fits), ""]
        else:
            out += [f"No regression: {b['fit_error']}", ""]
        c = b.get("self_vs_mixed")
        if c:
            beats = c["mixtures_beaten"] == c["mixtures"]
            out += [
                "### Self-MoA vs Mixed-MoA",
                "",
                "| | configuration | t | 95% CI |",
                "|---|---|---|---|",
                *[
                    f"| {r['role']} | {r['label']} | {r['t']:.1f} "
                    f"| [{r['ci'][0]:.1f}, {r['ci'][1]:.1f}] |"
                    for r in c["bars"]
                ],
                "",
                f"Self-MoA on the best model (`{c['self_best_model']}`) minus the best mixture "
                f"(`{c['best_mixture']}`): {c['difference']:+.1f} points, 95% CI "
                f"[{c['difference_ci'][0]:+.1f}, {c['difference_ci'][1]:+.1f}] "
                f"over {c['items']} items. "
                f"It beats {c['mixtures_beaten']} of {c['mixtures']} mixtures"
                + (f" and ties {c['mixtures_tied']}" if c["mixtures_tied"] else "")
                + (": every mixture." if beats else "."),
                "",
            ]
        out += ["### Configurations", "", b["tables"]["configurations"], ""]
        for name in (f"qd_{bench}.png", f"k_{bench}.png"):
            if any(p.endswith(name) for p in results["images"]):
                out += [f"![{name}]({name})", ""]
    if any(p.endswith("self_vs_mixed.png") for p in results["images"]):
        out += [
            "## Self-MoA vs Mixed-MoA, all benchmarks",
            "",
            "![self_vs_mixed](self_vs_mixed.png)",
            "",
        ]
    return "\n".join(out)


FIT_KEYS = ("n", "alpha", "se_alpha", "p_alpha", "beta", "se_beta", "p_beta", "r2")


def mirror(path: Path, results: dict, mode: str) -> None:
    """Log the tables and images to W&B, in the analysed runs' group (offline by default)."""
    import wandb

    logger = results["logger"]
    group = logger.get("group") or path.name
    wrun = wandb.init(
        project=logger.get("project", "self-moa-harness"),
        entity=logger.get("entity"),
        group=group,
        name=f"analysis-{path.name}",
        job_type="analysis",
        dir=str(path),
        mode=mode,
        config={"path": str(path), "embedding_model": results["embedding_model"]},
    )
    exit_code = 1
    try:
        payload = {}
        for bench, b in results["benchmarks"].items():
            first = next(iter(b["configurations"].values()))
            columns = ["configuration", *first.keys()]
            payload[f"{bench}/configurations"] = wandb.Table(
                columns=columns,
                data=[[label, *v.values()] for label, v in b["configurations"].items()],
            )
            fits = b.get("fits", {})
            for q, f in fits.items():
                for key in FIT_KEYS:
                    wrun.summary[f"{bench}/fit_{q}/{key}"] = f[key]
            if fits:
                payload[f"{bench}/regression"] = wandb.Table(
                    columns=["quality", *FIT_KEYS],
                    data=[[q, *(f[key] for key in FIT_KEYS)] for q, f in fits.items()],
                )
        for image in results["images"]:
            payload[f"plots/{Path(image).stem}"] = wandb.Image(image)
        wrun.log(payload)
        exit_code = 0
    finally:
        wrun.finish(exit_code=exit_code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.analyze", description=__doc__.split("\n")[0]
    )
    parser.add_argument("path", type=Path, help="a run directory or a multirun sweep directory")
    parser.add_argument(
        "--embedding-model",
        default=DEFAULT_EMBEDDING_MODEL,
        help="'minilm' (offline, PyPI) or a sentence-transformers id/folder",
    )
    parser.add_argument(
        "--device", default=None, help="embedding device (cpu, cuda); default: automatic"
    )
    parser.add_argument(
        "--cache-dir", default=None, help="embedding cache (default ~/.cache/harness/embeddings)"
    )
    parser.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap draws over items (0: none)"
    )
    parser.add_argument(
        "--methods",
        default="self_moa,mixed_moa",
        help="methods whose configurations enter the regression",
    )
    parser.add_argument(
        "--all-k", action="store_true", help="fit over every k, not only the most common"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--wandb-mode", default="offline", choices=["offline", "online", "disabled"]
    )
    parser.add_argument("--no-wandb", action="store_true", help="same as --wandb-mode disabled")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.bootstrap < 0:
        parser.error(f"--bootstrap must be >= 0 (got {args.bootstrap})")
    try:
        embedder = Embedder(args.embedding_model, args.cache_dir, args.device)
        methods = [m for m in args.methods.split(",") if m]
        results = analyze(args.path, embedder, methods, args.all_k, args.bootstrap, args.seed)
        if not (args.no_wandb or args.wandb_mode == "disabled"):
            mirror(args.path, results, args.wandb_mode)
    except AnalysisError as e:
        print(f"analysis error: {e}", file=sys.stderr)
        return 2
    print((args.path / "report.md").read_text())
    print(f"report: {(args.path / 'report.md').resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
