"""The paper's claims checked on a study (harness.analysis.paper's Table 3 layout): each claim
of a preset (`paper.table3.claims`) gets our estimate, a paired interval and a verdict."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.analysis.measure import Point
from harness.analysis.paired import paired_difference, percentile_interval

TASKBEST = "taskbest"
AVERAGE, WEIGHTED, DIFF = "Average", "WeightedAvg", "Diff"
Layout = Any  # harness.analysis.paper.Layout (which imports this module)


def claim_verdict(estimate: float, ci: tuple[float, float], test: str) -> str:
    """A claim that a difference is > 0 (`greater`) or >= 0 (`no_worse`), against our data."""
    if estimate != estimate:
        return "not measured"
    lo, hi = ci
    if hi < 0 or (test == "greater" and hi <= 0 and estimate < 0):
        return "contradicts"
    if test == "greater":
        return "matches" if lo > 0 else "inconclusive"
    return "matches" if estimate >= 0 else "inconclusive"


def find_row(result: dict, key: list | str) -> dict | None:
    """A row by its key in letters ([proposers, aggregator]) or by its label (a string)."""
    if isinstance(key, str):
        return next((r for r in result["rows"] if r["label"] == key), None)
    return next((r for r in result["rows"] if r["key"] == list(key)), None)


def claims(
    result: dict, found: list[Point], layout: Layout, benchmarks: dict, table: dict | None,
    draws: int, seed: int, series,
) -> list[dict]:  # fmt: skip
    """One line per claim of the preset (`paper.table3.claims`), with its verdict on our data."""
    out = []
    for c in (table or {}).get("claims") or []:
        kind = c.get("kind", "difference")
        line = {"claim": c["text"], "kind": kind}
        if kind == "difference":
            line.update(difference_claim(result, c, series))
        elif kind == "alpha_beta":
            line.update(alpha_beta_claim(benchmarks))
        elif kind == "sequential":
            line.update(sequential_claim(found, layout, draws, seed))
        else:
            line.update({"verdict": "not measured", "detail": f"unknown claim kind {kind!r}"})
        out.append(line)
    return out


def difference_claim(result: dict, c: dict, series) -> dict:
    """`row` minus `minus` (a row key or label, or `best_mixture`) on `column` (a benchmark,
    Average or WeightedAvg) is > 0 (`test: greater`) or >= 0 (`test: no_worse`), with its paired
    interval."""
    column = c.get("column", AVERAGE)
    row = find_row(result, c["row"])
    if c.get("minus") == "best_mixture":
        other = next((r for r in result["rows"] if r["label"] == result["best_mixture"]), None)
    else:
        other = find_row(result, c["minus"])
    if not row or not other or column not in row["cells"]:
        return {"verdict": "not measured", "detail": "its rows are not in the study"}
    (a, a_draws), (b, b_draws) = series(row["label"], column), series(other["label"], column)
    estimate = a - b
    ci = percentile_interval(a_draws - b_draws) if a_draws is not None else (estimate, estimate)
    return {
        "ours": estimate,
        "ci": list(ci),
        "paper": c.get("paper"),
        "rows": [row["label"], other["label"]],
        "column": column,
        "verdict": claim_verdict(estimate, ci, c.get("test", "no_worse")),
    }


def alpha_beta_claim(benchmarks: dict) -> dict:
    """alpha > beta on every dataset, from the Table 4 fits (alpha - beta's bootstrap interval,
    else +-1.96 standard errors, covariance ignored)."""
    parts, verdicts = [], []
    for bench, b in benchmarks.items():
        fit = (b.get("fits") or {}).get("q")
        if not fit:
            continue
        diff = fit["alpha"] - fit["beta"]
        if fit.get("diff_ci"):
            ci = tuple(fit["diff_ci"])
        else:
            half = 1.96 * float(np.hypot(fit["se_alpha"], fit["se_beta"]))
            ci = (diff - half, diff + half)
        verdicts.append(claim_verdict(diff, ci, "greater"))
        parts.append(f"{bench}: α−β = {diff:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}] ({verdicts[-1]})")
    if not verdicts:
        return {"verdict": "not measured", "detail": "no Table 4 fit"}
    overall = ("contradicts" if "contradicts" in verdicts else
               "matches" if all(v == "matches" for v in verdicts) else "inconclusive")  # fmt: skip
    return {"verdict": overall, "detail": "; ".join(parts)}


def sequential_claim(found: list[Point], layout: Layout, draws: int, seed: int) -> dict:
    """Sequential aggregation (several rounds of one mode) no worse than one-shot aggregation of
    the same proposals by the same aggregator, per benchmark (paired)."""
    parts, verdicts = [], []
    for b in layout.benches:
        mine = [p for p in found if p.benchmark == b and p.kind == "self" and not p.selects]
        for one in (p for p in mine if p.rounds == 1):
            for seq in mine:
                if (seq is one or len(seq.modes) != 1 or seq.modes == one.modes
                        or (seq.mix, seq.aggregator) != (one.mix, one.aggregator)):  # fmt: skip
                    continue
                items = sorted(set(seq.per_item) & set(one.per_item))
                x = np.array([seq.per_item[i]["t"] for i in items])
                y = np.array([one.per_item[i]["t"] for i in items])
                d = paired_difference(x, y, draws, seed)
                verdicts.append(claim_verdict(d.difference, d.ci, "no_worse"))
                parts.append(f"{b}: {seq.label} − {one.label} = {d.difference:+.1f} "
                             f"[{d.ci[0]:+.1f}, {d.ci[1]:+.1f}] ({verdicts[-1]})")  # fmt: skip
    if not verdicts:
        return {
            "verdict": "not measured",
            "detail": "no sequential row beside a one-shot row of the same proposals",
        }
    overall = ("contradicts" if "contradicts" in verdicts else
               "matches" if all(v == "matches" for v in verdicts) else "inconclusive")  # fmt: skip
    return {"verdict": overall, "detail": "; ".join(parts)}
