"""Table 3 of the paper as markdown: our cells beside the published ones, and the claims
(the text of harness.analysis.paper's results, for report.md)."""

from __future__ import annotations

from collections import Counter

from harness.analysis.paper_claims import AVERAGE, DIFF, WEIGHTED


def fmt(x: float | None, signed: bool = False, digits: int = 2) -> str:
    if x is None or x != x:
        return "–"
    return f"{x + 0.0:+.{digits}f}" if signed else f"{x + 0.0:.{digits}f}"


def cell_text(row: dict, name: str, signed: bool = False) -> str:
    cell = row["cells"].get(name)
    if cell is None:
        return "–"
    lo, hi = cell["ci"]
    text = f"{fmt(cell['value'], signed)} [{fmt(lo, signed)}, {fmt(hi, signed)}]"
    paper = (row.get("paper") or {}).get(name)
    if paper is not None:
        text += f" · paper {fmt(paper, signed)}"
        v = (row.get("verdicts") or {}).get(name)
        if v:
            text += f" ({v})"
    return text


def section(t: dict) -> list[str]:
    """The markdown of the Table 3 layout (report.md)."""
    names = [*t["benchmarks"], AVERAGE] + ([WEIGHTED] if t["weights"] else [])
    has_diff = any(DIFF in r["cells"] for r in t["rows"])
    head = ["configuration", "group", *names] + (["Diff to best mixture"] if has_diff else [])
    lines = [
        f"## {t['title']}",
        "",
        "Scores in percent (or the benchmark's scale). Each cell: ours [95% interval] · the "
        "paper's value (its verdict: matches = inside our interval, above, below). Intervals: "
        f"{t['draws']} joint bootstrap draws of each benchmark's items, shared by every row, so "
        "differences are paired. Average: the plain mean of the benchmark columns"
        + (
            "; WeightedAvg: the paper's weights ("
            + ", ".join(f"{b} {w:.4f}" for b, w in t["weights"].items())
            + ")"
            if t["weights"]
            else ""
        )
        + ". Items per benchmark (every row scored on them): "
        + ", ".join(f"{b} {n}" for b, n in t["items"].items())
        + ".",
        "",
        "TaskBest (the best model alone) per task: "
        + ", ".join(f"{b} → {m}" for b, m in t["taskbest"].items())
        + (
            f"; best mixture (highest Average): `{t['best_mixture']}`."
            if t["best_mixture"]
            else "; no mixture in the study."
        ),  # fmt: skip
    ]
    if t["paper_columns"]:
        lines[-1] += (
            " Paper columns: "
            + ", ".join(f"{b} = {c}" for b, c in t["paper_columns"].items())
            + "."
        )
    if t["paper_columns"] and not t["compare"]:
        lines += ["", "The published numbers are shown beside ours but not judged (other "
                  "models): no verdicts."]  # fmt: skip
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in t["rows"]:
        cells = [f"`{r['label']}`", r["group"], *(cell_text(r, n) for n in names)]
        if has_diff:
            cells.append(cell_text(r, DIFF, signed=True))
        lines.append("| " + " | ".join(cells) + " |")
    resolved = [r for r in t["rows"] if r["group"] == "TaskBest"]
    if resolved:
        lines += [""] + [
            f"{r['label']}: " + ", ".join(f"{b} `{label}`" for b, label in r["sources"].items())
            for r in resolved
        ]
    verdicts = Counter(v for r in t["rows"] for v in (r.get("verdicts") or {}).values() if v)
    if verdicts:
        lines += ["", "Published cells against our intervals: "
                  + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())) + "."]  # fmt: skip
    if t["best_mixture"]:
        lines += ["", f"### Paired differences to the best mixture (`{t['best_mixture']}`), "
                  "per benchmark", "",
                  "Difference in points [95% paired bootstrap interval]; wins/losses: items "
                  "where the row scores higher/lower; p: exact McNemar (0/1 scores).", "",
                  "| configuration | " + " | ".join(t["benchmarks"]) + " |",
                  "|---|" + "---|" * len(t["benchmarks"])]  # fmt: skip
        for r in t["rows"]:
            if not r["vs_best_mixture"]:
                continue
            parts = []
            for b in t["benchmarks"]:
                d = r["vs_best_mixture"][b]
                text = (f"{fmt(d['difference'], True, 1)} [{fmt(d['ci'][0], True, 1)}, "
                        f"{fmt(d['ci'][1], True, 1)}] {d['wins']}/{d['losses']}")  # fmt: skip
                if d["p_mcnemar"] is not None:
                    text += f" p={d['p_mcnemar']:.2g}"
                parts.append(text)
            lines.append(f"| `{r['label']}` | " + " | ".join(parts) + " |")
    if t["claims"]:
        lines += ["", "### The paper's claims", ""]
        for c in t["claims"]:
            text = f"- {c['claim']}: **{c['verdict']}**"
            if "ours" in c:
                text += (f" (ours {fmt(c['ours'], True)} [{fmt(c['ci'][0], True)}, "
                         f"{fmt(c['ci'][1], True)}]")  # fmt: skip
                text += (f"; paper {fmt(c['paper'], True)})" if c.get("paper") is not None
                         else ")")  # fmt: skip
            if c.get("detail"):
                text += f": {c['detail']}"
            lines.append(text)
    return lines + [""]
