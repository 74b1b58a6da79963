"""The paper's Table 3 layout over a multi-benchmark study, beside the published numbers.

Rows are the study's configurations present on every benchmark (their labels), then the TaskBest
rows resolved per task; columns are the benchmarks, their plain Average and, where the preset
carries the paper's weights, the WeightedAvg; each row's difference to the best mixture (the
mixture with the highest Average). What a configuration is comes from its records, not its name
(harness.analysis.measure.Point): no proposals = a model alone; proposals of several models = a
mixture; of one model = a Self row; one round after the proposals that writes (not selects) the
answer = one-shot aggregation.

TaskBest: per benchmark, the model whose greedy answer alone scores highest there (without alone
rows: whose proposals score highest). "TaskBest (aggregator X)" takes, per benchmark, the
one-shot Self row of that model with aggregator X; "TaskBest (self-aggregated)" the one whose
aggregator is the model itself.

Intervals: one joint bootstrap (harness.analysis.paired.resampled_means): each draw resamples
each benchmark's items once for every configuration, so a cell, an Average, a WeightedAvg and
every difference of them is computed per draw from the same items (paired), and its 95%
interval is the central 95% of the draws. Per benchmark, each difference also gets the exact
McNemar test when scores are 0/1.

The paper's numbers: a preset's `paper.<table>` (conf/experiment/paper_table3.yaml holds the
whole of Table 3, from ../shared/docs/paper.md; paper_table7.yaml Table 7, paper_alpaca_eval.yaml
the AlpacaEval table: every `paper.<name>` with `rows` is laid out the same way). A published row
names its configuration by (proposers, aggregator) in letters, or by our `label` (a row the
letters cannot say: 3 layers, a selection). Each published cell is set beside ours with a
verdict: "matches" (inside our 95% interval), "above" or "below" it. Each claim gets a line:
"matches", "inconclusive" (our interval allows either), "contradicts" or "not measured".
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from harness.analysis.measure import Point, Run
from harness.analysis.paired import paired_difference, percentile_interval, resampled_means
from harness.analysis.paper_claims import AVERAGE, DIFF, TASKBEST, WEIGHTED, claims

log = logging.getLogger(__name__)

NAN = float("nan")


def paper_table(runs: list[Run], name: str = "table3") -> dict | None:
    """The preset's published numbers (`paper.<name>` of a run's config), if any run has them."""
    for run in runs:
        table = ((run.config.get("paper") or {}).get(name)) or None
        if table:
            return table
    return None


def score_tables(runs: list[Run]) -> list[str]:
    """The preset's published score tables other than Table 3 (`paper.<name>` with a list of
    rows: table7, alpaca_eval, ...), laid out like Table 3."""
    names: dict[str, None] = {}
    for run in runs:
        for name, table in (run.config.get("paper") or {}).items():
            if name != "table3" and isinstance((table or {}).get("rows"), list):
                names[name] = None
    return list(names)


def verdict(value: float | None, ci: tuple[float, float]) -> str | None:
    """Where a published value lies against our 95% interval."""
    if value is None or value != value or ci[0] != ci[0]:
        return None
    if value > ci[1] + 1e-9:
        return "above"
    if value < ci[0] - 1e-9:
        return "below"
    return "matches"


class Layout:
    """The study's configurations by benchmark, with their structure in the table's letters."""

    def __init__(self, found: list[Point], runs: list[Run], table: dict | None):
        self.table = table or {}
        columns = self.table.get("benchmarks") or {}  # paper column -> our benchmark
        present = sorted({p.benchmark for p in found})
        ordered = [b for b in columns.values() if b in present]
        self.benches = ordered + [b for b in present if b not in ordered]
        self.paper_column = {b: c for c, b in columns.items() if b in present}
        self.points = {(p.benchmark, p.label): p for p in found}
        letters = next((r.config.get("letters") for r in runs if r.config.get("letters")), {})
        wanted = self.table.get("letters") or list(letters)
        self.letter_order = list(wanted)
        self.letter = {}
        for letter in reversed(wanted):  # the first listed letter wins a model named twice
            if letter in letters:
                self.letter[letters[letter]] = letter

    def short(self, model: str | None) -> str | None:
        return None if model is None else self.letter.get(model, model)

    def proposers(self, p: Point) -> str:
        """The proposer multiset in letters, in the table's letter order (`mmmddd`)."""
        order = {letter: i for i, letter in enumerate(self.letter_order)}
        names = sorted(p.mix, key=lambda m: (order.get(self.short(m), 99), m))
        return "".join(self.short(m) * p.mix[m] if len(self.short(m)) == 1 else
                       f"{self.short(m)}x{p.mix[m]}" for m in names)  # fmt: skip

    def one_shot(self, p: Point) -> bool:
        return p.rounds <= 1 and not p.selects

    def key(self, p: Point) -> tuple[str, str | None] | None:
        """(proposers, aggregator) in letters, as the paper writes a row; None when the row is
        not one-shot (a selection, several rounds)."""
        if not self.one_shot(p):
            return None
        if p.kind == "none":
            return (self.short(p.aggregator) or "", None)
        return (self.proposers(p), self.short(p.aggregator))


def group_of(p: Point) -> str:
    return {"none": "alone", "mixed": "mixture", "self": "one model"}.get(p.kind, p.kind)


def alone_model(layout: Layout, p: Point) -> str | None:
    """The model of a row that is one model's answer alone: a row without proposals, or the
    greedy baseline (`single`: one sample of one model, nothing aggregated); else None."""
    if not layout.one_shot(p):
        return None
    if p.kind == "none":
        return p.aggregator
    if p.aggregator is None and len(p.models) == 1 and p.k == 1:
        return p.models[0]
    return None


def taskbest_models(layout: Layout, labels: list[str]) -> dict[str, str]:
    """Per benchmark, the best model: its greedy answer alone scores highest (else its
    proposals do)."""
    out = {}
    for b in layout.benches:
        points = [layout.points[(b, label)] for label in labels if (b, label) in layout.points]
        alone = {p.label: m for p in points if (m := alone_model(layout, p))}
        if alone:
            best = max((p for p in points if p.label in alone), key=lambda p: p.mean("t"))
            out[b] = alone[best.label]
            continue
        quality: dict[str, list[float]] = {}
        for p in points:
            for model, q in p.model_quality().items():
                quality.setdefault(model, []).append(q)
        if quality:
            out[b] = max(quality, key=lambda m: np.nanmean(quality[m]))
    return out


def taskbest_rows(layout: Layout, best: dict[str, str], k: int) -> list[dict]:
    """The TaskBest rows: per aggregator shared by every task, and self-aggregated."""
    selfs = {b: [p for (bb, _), p in layout.points.items() if bb == b and p.kind == "self"
                 and layout.one_shot(p) and p.k == k] for b in layout.benches}  # fmt: skip

    def pick(b: str, aggregator: str) -> Point | None:
        found = [p for p in selfs[b] if p.models == [best.get(b)] and p.aggregator == aggregator]
        return min(found, key=lambda p: p.label) if found else None

    rows = []
    aggregators = sorted({p.aggregator for ps in selfs.values() for p in ps if p.aggregator})
    for agg in aggregators:
        sources = {b: pick(b, agg) for b in layout.benches}
        if all(sources.values()):
            rows.append({"label": f"TaskBest x{k}, aggregator {layout.short(agg)}",
                         "key": (TASKBEST, layout.short(agg)), "sources": sources})  # fmt: skip
    sources = {b: pick(b, best.get(b)) for b in layout.benches}
    if all(sources.values()):
        rows.append({"label": f"TaskBest x{k}, self-aggregated", "key": (TASKBEST, TASKBEST),
                     "sources": sources})  # fmt: skip
    return rows


def is_mixture(key: tuple) -> bool:
    """A published row of several proposer models with an aggregator (one-shot)."""
    proposers, aggregator = key
    if proposers == LABEL:
        return False
    return aggregator is not None and proposers != TASKBEST and len(set(proposers)) > 1


LABEL = "label"  # a published row keyed by our label: (LABEL, label)


def paper_rows(table: dict) -> dict[tuple, dict]:
    """The published rows by (proposers, aggregator), aggregator None for a model alone, or by
    (LABEL, our label)."""
    out = {}
    for r in table.get("rows") or []:
        if r.get("label"):
            out[(LABEL, str(r["label"]))] = r
            continue
        agg = r.get("aggregator")
        out[(str(r["proposers"]), None if agg in (None, "-") else str(agg))] = r
    return out


def table3(
    found: list[Point], runs: list[Run], benchmarks: dict, draws: int, seed: int,
    name: str = "table3",
) -> dict | None:  # fmt: skip
    """Table 3's layout of a study over several benchmarks (None with one benchmark and no
    published table), or of the preset's published table `name` (None without it).
    `benchmarks` holds the per-benchmark results (for the alpha-beta claim)."""
    table = paper_table(runs, name)
    if name != "table3" and not table:
        return None
    layout = Layout(found, runs, table)
    if len(layout.benches) < 2 and not table:
        return None
    labels = [
        label
        for label in dict.fromkeys(p.label for p in found)
        if all((b, label) in layout.points for b in layout.benches)
    ]
    if not labels:
        log.warning("Table 3 layout: no configuration is on every benchmark")
        return None
    sample = {label: layout.points[(layout.benches[0], label)] for label in labels}
    mixes = [p.k for p in sample.values() if p.kind == "mixed"]
    k = Counter(mixes or [p.k for p in sample.values() if p.kind == "self"] or [0])
    best = taskbest_models(layout, labels)
    rows = [{"label": label, "key": layout.key(sample[label]), "group": group_of(sample[label]),
             "method": sample[label].method,
             "sources": {b: layout.points[(b, label)] for b in layout.benches}}
            for label in labels]  # fmt: skip
    for r in taskbest_rows(layout, best, k.most_common(1)[0][0]):
        first = r["sources"][layout.benches[0]]
        rows.append({**r, "group": "TaskBest", "method": first.method})

    # per benchmark: (rows, items) scores over the items every row has
    columns, items = {}, {}
    for b in layout.benches:
        common = sorted(set.intersection(*(set(r["sources"][b].per_item) for r in rows)))
        items[b] = common
        columns[b] = np.array([[r["sources"][b].per_item[i]["t"] for i in common] for r in rows])
    means = {b: np.array([np.nanmean(c) if (c == c).any() else NAN for c in columns[b]])
             for b in layout.benches}  # fmt: skip
    drawn = resampled_means(columns, max(draws, 1), seed) if draws > 0 else None

    weights = table_weights(table, layout) if table else None

    def combine(per_bench: dict[str, np.ndarray], how: dict[str, float] | None) -> np.ndarray:
        """Average (how None) or weighted average over the benchmarks, row-wise."""
        stack = np.stack([per_bench[b] for b in layout.benches], axis=-1)
        if how is None:
            return stack.mean(axis=-1)
        return stack @ np.array([how[b] for b in layout.benches])

    point = {AVERAGE: combine(means, None)}
    boot = {AVERAGE: combine(drawn, None)} if drawn else {}
    if weights:
        point[WEIGHTED] = combine(means, weights)
        if drawn:
            boot[WEIGHTED] = combine(drawn, weights)
    mixtures = [i for i, r in enumerate(rows) if r["group"] == "mixture" and r["key"]]
    best_mix = max(mixtures, key=lambda i: point[AVERAGE][i], default=None)

    def interval(values: np.ndarray | None, estimate: float) -> tuple[float, float]:
        return percentile_interval(values) if values is not None else (estimate, estimate)

    published = paper_rows(table) if table else {}
    if len(layout.paper_column) == 1:  # one benchmark (Table 7): its column is the Average
        (column,) = layout.paper_column.values()
        published = {key: {AVERAGE: r.get(column), **r} for key, r in published.items()}
    paper_best = max((r[AVERAGE] for key, r in published.items() if is_mixture(key)
                      and r.get(AVERAGE) is not None), default=None)  # fmt: skip
    compare = bool(table) and bool(table.get("compare", True))
    out_rows = []
    for i, r in enumerate(rows):
        cells = {}
        for b in layout.benches:
            value = float(means[b][i])
            cells[b] = {"value": value, "ci": interval(drawn[b][:, i] if drawn else None, value)}
        for name in point:
            cells[name] = {"value": float(point[name][i]),
                           "ci": interval(boot[name][:, i] if boot else None,
                                          float(point[name][i]))}  # fmt: skip
        if best_mix is not None:
            d = point[AVERAGE][i] - point[AVERAGE][best_mix]
            diffs = boot[AVERAGE][:, i] - boot[AVERAGE][:, best_mix] if boot else None
            cells[DIFF] = {"value": float(d), "ci": interval(diffs, float(d))}
        per_bench = {}
        if best_mix is not None and i != best_mix:
            for j, b in enumerate(layout.benches):
                per_bench[b] = paired_difference(columns[b][i], columns[b][best_mix], draws,
                                                 seed + j).to_json()  # fmt: skip
        paper = published.get((LABEL, r["label"])) or (published.get(r["key"]) if r["key"]
                                                         else None)  # fmt: skip
        row = {
            "label": r["label"],
            "group": r["group"],
            "method": r["method"],
            "key": list(r["key"]) if r["key"] else None,
            "sources": {b: p.label for b, p in r["sources"].items()},
            "cells": cells,
            "vs_best_mixture": per_bench,
        }
        if paper:
            published_cells = {b: paper.get(layout.paper_column.get(b)) for b in layout.benches}
            published_cells.update({n: paper.get(n) for n in (AVERAGE, WEIGHTED)})
            if paper_best is not None and paper.get(AVERAGE) is not None:
                published_cells[DIFF] = round(paper[AVERAGE] - paper_best, 2)
            row["paper"] = {n: v for n, v in published_cells.items() if v is not None}
            if compare:
                row["verdicts"] = {n: verdict(v, cells[n]["ci"]) for n, v in row["paper"].items()
                                   if n in cells}  # fmt: skip
        out_rows.append(row)

    result = {
        "benchmarks": layout.benches,
        "paper_columns": layout.paper_column,
        "weights": weights,
        "taskbest": {b: layout.short(m) for b, m in best.items()},
        "best_mixture": rows[best_mix]["label"] if best_mix is not None else None,
        "items": {b: len(v) for b, v in items.items()},
        "draws": draws,
        "compare": compare,
        "title": (table or {}).get("title", "Table 3 layout"),
        "rows": out_rows,
    }
    index = {r["label"]: i for i, r in enumerate(rows)}

    def series(label: str, column: str) -> tuple[float, np.ndarray | None]:
        """A row's value on a column and its bootstrap draws (None without draws)."""
        i = index[label]
        if column in point:
            return float(point[column][i]), (boot[column][:, i] if boot else None)
        return float(means[column][i]), (drawn[column][:, i] if drawn else None)

    result["claims"] = claims(result, found, layout, benchmarks, table, draws, seed, series)
    return result


def table_weights(table: dict, layout: Layout) -> dict[str, float] | None:
    """The paper's WeightedAvg weights by our benchmark (None unless every column has one)."""
    weights = table.get("weights") or {}
    out = {b: weights.get(layout.paper_column.get(b)) for b in layout.benches}
    if any(w is None for w in out.values()):
        return None
    total = sum(out.values())
    return {b: float(w) / total for b, w in out.items()}
