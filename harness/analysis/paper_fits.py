"""The paper's Tables 4 and 5 beside our fits (harness.analysis.fits), per dataset.

A preset carries them as `paper.table4` and `paper.table5` (conf/experiment/paper_table3.yaml,
from ../shared/docs/paper.md), their rows keyed by the paper's column (MMLU, CRUX, MATH) and
mapped to our benchmarks by the table's `benchmarks` (else Table 3's). Table 4: alpha, beta
and R^2 of t = alpha*q + beta*d + gamma; Table 5: R^2 of the same fit with another quality
measure in q's place (a measure name of harness.analysis.quality, e.g. centered1).

Each published value gets a verdict against our 95% interval ("matches", "above", "below";
harness.analysis.paper.verdict): alpha's and beta's from the item bootstrap of the fit
(harness.analysis.regression), else +-1.96 standard errors; R^2's from the same bootstrap. A
Table 5 measure whose fit is Table 4's (every K = 1 measure is the plain mean) shares its
interval; other cells have none, and get no verdict ("no interval").
"""

from __future__ import annotations

from harness.analysis.measure import Run
from harness.analysis.paper import paper_table, verdict

FIT_TABLES = ("table4", "table5")
Z95 = 1.96


def column_map(table: dict, runs: list[Run]) -> dict[str, str]:
    """Paper column -> our benchmark: the table's own mapping, else Table 3's."""
    return dict(table.get("benchmarks") or (paper_table(runs) or {}).get("benchmarks") or {})


def cell(value: float, ci: tuple[float, float] | None, paper: float | None, compare: bool) -> dict:
    out = {"value": value, "ci": list(ci) if ci else None, "paper": paper}
    if compare and paper is not None:
        out["verdict"] = verdict(paper, ci) if ci else "no interval"
    return out


def coefficient_ci(fit: dict, name: str) -> tuple[float, float]:
    if fit.get(f"{name}_ci"):
        return tuple(fit[f"{name}_ci"])
    half = Z95 * fit[f"se_{name}"]
    return fit[name] - half, fit[name] + half


def table4(table: dict, runs: list[Run], benchmarks: dict) -> dict:
    compare = bool(table.get("compare", True))
    rows = []
    for column, bench in column_map(table, runs).items():
        paper = (table.get("rows") or {}).get(column)
        fit = ((benchmarks.get(bench) or {}).get("fits") or {}).get("q")
        if not paper or not fit:
            continue
        cells = {n: cell(fit[n], coefficient_ci(fit, n), paper.get(n), compare)
                 for n in ("alpha", "beta")}  # fmt: skip
        r2_ci = tuple(fit["r2_ci"]) if fit.get("r2_ci") else None
        cells["r2"] = cell(fit["r2"], r2_ci, paper.get("r2"), compare)
        rows.append({"column": column, "benchmark": bench, "n": fit["n"],
                     "paper_n": paper.get("n"), "paper_se": paper.get("se"),
                     "cells": cells})  # fmt: skip
    return {"title": table.get("title", "Table 4"), "compare": compare, "rows": rows}


def table5(table: dict, runs: list[Run], benchmarks: dict) -> dict:
    compare = bool(table.get("compare", True))
    rows = []
    for column, bench in column_map(table, runs).items():
        paper = (table.get("rows") or {}).get(column)
        fits = (benchmarks.get(bench) or {}).get("fits") or {}
        if not paper or "q" not in fits:
            continue
        cells = {}
        for measure, value in paper.items():
            fit = fits.get(measure)
            if not fit:
                cells[measure] = {"value": None, "ci": None, "paper": value,
                                  "verdict": "not measured" if compare else None}  # fmt: skip
                continue
            same = abs(fit["r2"] - fits["q"]["r2"]) < 1e-9 and fits["q"].get("r2_ci")
            ci = tuple(fits["q"]["r2_ci"]) if same else None
            cells[measure] = cell(fit["r2"], ci, value, compare)
        rows.append({"column": column, "benchmark": bench, "cells": cells})
    return {"title": table.get("title", "Table 5"), "compare": compare, "rows": rows}


def fit_tables(runs: list[Run], benchmarks: dict) -> dict:
    """The preset's Tables 4 and 5 beside our fits ({} when it carries neither)."""
    out = {}
    for name, build in (("table4", table4), ("table5", table5)):
        table = paper_table(runs, name)
        if table:
            out[name] = build(table, runs, benchmarks)
    return out


def fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or x != x else f"{x:.{digits}f}"


def cell_text(c: dict, se: float | None = None) -> str:
    text = fmt(c["value"])
    if c["ci"]:
        text += f" [{fmt(c['ci'][0])}, {fmt(c['ci'][1])}]"
    if c.get("paper") is not None:
        text += f" · paper {fmt(c['paper'])}" + (f" ± {fmt(se)}" if se is not None else "")
        if c.get("verdict"):
            text += f" ({c['verdict']})"
    return text


def section(tables: dict) -> list[str]:
    """The markdown of the published Tables 4 and 5 beside ours (report.md)."""
    lines = []
    for name, t in tables.items():
        if not t["rows"]:
            continue
        lines += [f"## {t['title']}", ""]
        if not t["compare"]:
            lines += ["The published numbers are shown, not judged (other models).", ""]
        if name == "table4":
            lines += ["Ours [95% bootstrap interval over items] · the paper's value (verdict). "
                      "The paper's ± is its standard error.", "",
                      "| dataset | benchmark | α (quality) | β (diversity) | R² | N ours · paper |",
                      "|---|---|---|---|---|---|"]  # fmt: skip
            for r in t["rows"]:
                alpha = cell_text(r["cells"]["alpha"], r.get("paper_se"))
                beta = cell_text(r["cells"]["beta"], r.get("paper_se"))
                lines.append(f"| {r['column']} | {r['benchmark']} | {alpha} | {beta} | "
                             f"{cell_text(r['cells']['r2'])} | {r['n']} · "
                             f"{r.get('paper_n') or '–'} |")  # fmt: skip
        else:
            measures = list(dict.fromkeys(m for r in t["rows"] for m in r["cells"]))
            lines += ["R² of the fit with each quality measure in q's place: ours [95% interval"
                      " where it is Table 4's fit] · the paper's value (verdict).", "",
                      "| dataset | benchmark | " + " | ".join(measures) + " |",
                      "|---|---|" + "---|" * len(measures)]  # fmt: skip
            for r in t["rows"]:
                cells = [cell_text(r["cells"][m]) if m in r["cells"] else "–" for m in measures]
                lines.append(f"| {r['column']} | {r['benchmark']} | " + " | ".join(cells) + " |")
        counts: dict[str, int] = {}
        for r in t["rows"]:
            for c in r["cells"].values():
                if c.get("verdict"):
                    counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
        if counts:
            lines += ["", "Published values against our intervals: "
                      + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) + "."]  # fmt: skip
        lines.append("")
    return lines
