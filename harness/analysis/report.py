"""The markdown report of an analysis (report.md), built from the results of
harness.analysis.pipeline alone (the content of analysis.json)."""

from __future__ import annotations

from harness.analysis import paper_fits, paper_markdown
from harness.analysis.compare import COSTS
from harness.analysis.quality import FAMILIES, K_NORMS, measure_name
from harness.analysis.regression import Fit, table4

COLUMNS = [  # (header, measure, digits) of the configurations table
    ("t", "t", 1),
    ("q", "q", 1),
    ("q_2", "q2", 1),
    ("q_4", "q4", 1),
    ("knorm_2", "knorm2", 1),
    ("centered_2", "centered2", 1),
    ("d (Vendi)", "d", 2),
    ("d (n-gram Vendi)", "d_ngram", 2),
    ("distinct answers", "answers", 2),
    ("gen tok/item", "tokens", 0),
    ("calls/item", "calls", 1),
]


def fmt(x: float, digits: int = 1) -> str:
    return "–" if x is None or x != x else f"{x + 0.0:.{digits}f}"


def row(cells) -> str:
    return "| " + " | ".join(map(str, cells)) + " |"


def configuration_table(confs: dict[str, dict]) -> str:
    columns = COLUMNS
    if all(c["answers"] != c["answers"] for c in confs.values()):  # no extractable answers
        columns = [col for col in columns if col[1] != "answers"]
    head = ["configuration", "method", "kind", "k", "items (unscored)", *(h for h, _, _ in columns),
            "in fit"]  # fmt: skip
    lines = [row(head), "|" + "---|" * len(head)]
    for label, c in sorted(confs.items(), key=lambda kv: -(kv[1]["t"] if kv[1]["t"] == kv[1]["t"]
                                                            else float("-inf"))):  # fmt: skip
        cells = [label, c["method"], c["kind"], c["k"], f"{c['items']} ({c['unscored_items']})"]
        cells += [fmt(c[m], digits) for _, m, digits in columns]
        cells.append("yes" if c["in_fit"] else "")
        lines.append(row(cells))
    return "\n".join(lines)


def table5(fits: dict[str, dict], refused: dict[str, str]) -> str:
    """The paper's Table 5 layout: R^2 of the fit with each quality measure, K = 1..4."""
    lines = [
        row(["quality measure", *(f"K = {k}" for k in K_NORMS)]),
        "|---|" + "---|" * len(K_NORMS),
    ]
    for family, (name, _) in FAMILIES.items():
        cells = []
        for k in K_NORMS:
            key = measure_name(family, k)
            cells.append(f"{fits[key]['r2']:.3f}" if key in fits else "–")
        lines.append(row([name, *cells]))
    if refused:
        lines += ["", "Not fitted: " + "; ".join(f"{k}: {v}" for k, v in refused.items())]
    return "\n".join(lines)


def cost_table(rows: list[dict]) -> str:
    head = ["configuration", "method", "kind", "k", "t", "gen tok/item", "calls/item",
            "front (tokens)", "front (calls)"]  # fmt: skip
    lines = [row(head), "|" + "---|" * len(head)]
    for r in rows:
        star = ["★" if r[f"front_{cost}"] else "" for cost in COSTS]
        cells = [r["label"], r["method"], r["kind"], r["k"], fmt(r["t"])]
        lines.append(row([*cells, fmt(r["tokens"], 0), fmt(r["calls"]), *star]))
    return "\n".join(lines)


def self_mixed_section(c: dict) -> list[str]:
    beats = c["mixtures_beaten"] == c["mixtures"]
    return [
        "### Self-MoA vs Mixed-MoA",
        "",
        "| | configuration | t | 95% CI (BCa) |",
        "|---|---|---|---|",
        *[
            row([r["role"], r["label"], fmt(r["t"]), f"[{fmt(r['ci'][0])}, {fmt(r['ci'][1])}]"])
            for r in c["bars"]
        ],
        "",
        f"Self-MoA on the best model (`{c['self_best_model']}`) minus the best mixture "
        f"(`{c['best_mixture']}`): {c['difference']:+.1f} points, 95% CI "
        f"[{c['difference_ci'][0]:+.1f}, {c['difference_ci'][1]:+.1f}] "
        f"(paired bootstrap) over {c['items']} items scored in both: better on {c.get('wins', 0)}, "
        f"worse on {c.get('losses', 0)}"
        + (
            f", exact McNemar p = {c['p_mcnemar']:.3g}. "
            if c.get("p_mcnemar") is not None
            else ". "
        )  # fmt: skip
        + f"It beats {c['mixtures_beaten']} of {c['mixtures']} mixtures"
        + (f" and ties {c['mixtures_tied']}" if c["mixtures_tied"] else "")
        + (": every mixture." if beats else "."),
        "",
    ]


def header(results: dict) -> list[str]:
    methods = ", ".join(results["methods"])
    return [
        "# Quality versus diversity",
        "",
        f"Analysed: `{results['path']}` ({len(results['runs'])} run directories). "
        f"Embedding model: `{results['embedding_model']}`"
        + {
            "chunk": " (a proposal over its window embedded whole: windows averaged)",
            "truncate": " (a proposal over its window cut to its opening)",
        }.get(results.get("long_texts", ""), "")
        + ". Written by `python -m harness.analyze`.",
        "",
        "t: the ensemble's final score; q: mean proposal score; d: Vendi score of the proposals' "
        "sentence embeddings (cosine); n-gram Vendi over word 1-2-grams; distinct answers among "
        "the proposals. All per item, then averaged over items; scores in [0, 1] are shown in "
        "percent. Items whose final answer has no score (an unreadable judge reply) are left out "
        'and counted ("unscored"); a configuration with none scored is dropped from the fit.',
        "",
        "Quality measures (Table 5 compares them):",
        *[f"- {name}: {formula}" for name, formula in FAMILIES.values()],
        "",
        f"Regression: t = α·q + β·d + γ with q, d standardized over the configurations of "
        f"methods {methods}"
        + ("" if results["all_k"] else " with the most common number of proposals")
        + "; α, β in points of t per standard deviation; ± is the standard error (OLS).",
    ]


def k_note(ks: list[int]) -> str:
    """Said when configurations of several k are fitted together."""
    if len(ks) < 2:
        return ""
    return (f" It fits k = {', '.join(map(str, ks))} together: the Vendi score d ranges over "
            "1..k, so `--common-k` fits only the most common k.")  # fmt: skip


def report(results: dict) -> str:
    out = header(results)
    if results.get("table3"):
        out += ["", *paper_markdown.section(results["table3"])]
    for t in (results.get("paper_tables") or {}).values():
        out += ["", *paper_markdown.section(t)]
    if results.get("paper_fits"):
        out += ["", *paper_fits.section(results["paper_fits"])]
    for bench, b in results["benchmarks"].items():
        out += ["", f"## {bench} (t = `{b['metric']}`)", ""]
        if b["dropped_from_fit"]:
            out += ["Dropped from the fit: " + "; ".join(
                f"`{k}` ({v})" for k, v in b["dropped_from_fit"].items()), ""]  # fmt: skip
        if "fits" in b:
            fit = Fit.from_json(b["fits"]["q"])
            aggs = ", ".join(f"`{a}`" for a in b.get("fit_aggregators", []))
            out += ["### Regression (Table 4 layout)", "", table4({bench: fit}), "",
                    f"N = {fit.n} configurations (the paper: about 70 per dataset), aggregated "
                    f"by {aggs}"
                    + ("" if results.get("all_aggregators") else
                       " (one aggregator per fit: `--all-aggregators` keeps every one)")
                    + "." + k_note(b.get("fit_ks", [])), ""]  # fmt: skip
            out += ["### R² per quality measure (Table 5 layout)", "",
                    table5(b["fits"], b.get("fit_refused", {})), ""]  # fmt: skip
        else:
            out += [f"No regression: {b['fit_error']}. The tables and plots below still hold "
                    "every configuration.", ""]  # fmt: skip
        if b.get("self_vs_mixed"):
            out += self_mixed_section(b["self_vs_mixed"])
        out += ["### Configurations", "", configuration_table(b["configurations"]), ""]
        out += ["### Compute-matched comparison", "",
                f"Score against {COSTS['tokens']} and {COSTS['calls']}; ★ marks the Pareto "
                "front (no configuration costs less and scores more).", "",
                cost_table(b["compute_matched"]), ""]  # fmt: skip
        for name in (f"qd_{bench}.png", f"k_{bench}.png", f"cost_{bench}.png"):
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
