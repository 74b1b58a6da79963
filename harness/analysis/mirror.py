"""The W&B mirror of an analysis (job_type "analysis", in the analysed runs' group, offline by
default): per benchmark the configurations and regression tables, native charts built from
them (the q-d scatter with t, the k-scaling lines, score against tokens), and the PNGs.

Native charts: `wandb.plot.line_series` for t against k; `wandb.plot.scatter` for t against
generated tokens; the q-d scatter uses the same built-in scatter preset with t as its colour
field (`wandb.plot_table`), and its table carries t, so a table panel can colour by it too.
The run id is derived from the analysed directory, so analysing it again updates the same run.
"""

from __future__ import annotations

from pathlib import Path

from harness.tracking import run_id

COST_COLUMNS = ("kind", "tokens", "calls", "t", "front_tokens", "front_calls")
FIT_KEYS = ("n", "alpha", "se_alpha", "p_alpha", "beta", "se_beta", "p_beta", "r2")


def charts(wandb, bench: str, b: dict) -> dict:
    """The tables and native charts of one benchmark, keyed as they are logged."""
    out = {}
    confs = b["configurations"]
    if confs:
        first = next(iter(confs.values()))
        columns = ["configuration", *(k for k in first if k != "mix")]
        out[f"{bench}/configurations"] = wandb.Table(
            columns=columns,
            data=[[label, *(v for k, v in c.items() if k != "mix")] for label, c in confs.items()],
        )
    fits = b.get("fits", {})
    if fits:
        out[f"{bench}/regression"] = wandb.Table(
            columns=["quality", *FIT_KEYS],
            data=[[q, *(f[key] for key in FIT_KEYS)] for q, f in fits.items()],
        )
    if b.get("qd"):
        qd = wandb.Table(
            columns=["configuration", "kind", "q", "d", "t"],
            data=[[r["label"], r["kind"], r["q"], r["d"], r["t"]] for r in b["qd"]],
        )
        out[f"{bench}/qd"] = wandb.plot_table(
            "wandb/scatter/v0", qd, {"x": "q", "y": "d", "color": "t"},
            {"title": f"{bench}: quality vs diversity (colour: t)"},
        )  # fmt: skip
    lines = b.get("k_lines") or {}
    if lines:
        ordered = {name: sorted(rows, key=lambda r: r["k"]) for name, rows in lines.items()}
        out[f"{bench}/k_scaling"] = wandb.plot.line_series(
            xs=[[r["k"] for r in rows] for rows in ordered.values()],
            ys=[[r["t"] for r in rows] for rows in ordered.values()],
            keys=list(ordered),
            title=f"{bench}: t against k",
            xname="k",
        )
    cost = b.get("compute_matched") or []
    if cost:
        table = wandb.Table(
            columns=["configuration", *COST_COLUMNS],
            data=[[r["label"], *(r[c] for c in COST_COLUMNS)] for r in cost],
        )
        out[f"{bench}/compute_matched"] = table
        out[f"{bench}/t_vs_tokens"] = wandb.plot.scatter(
            table, "tokens", "t", title=f"{bench}: t against generated tokens per item"
        )
    return out


def table3_table(wandb, t: dict):
    """The Table 3 layout as one W&B table: a row per configuration, per column ours, its
    interval, the paper's value and the verdict."""
    names = [*t["benchmarks"], "Average"] + (["WeightedAvg"] if t["weights"] else []) + ["Diff"]
    columns = ["configuration", "group"]
    for n in names:
        columns += [n, f"{n} low", f"{n} high", f"{n} paper", f"{n} verdict"]
    data = []
    for r in t["rows"]:
        cells = [r["label"], r["group"]]
        for n in names:
            c = r["cells"].get(n) or {"value": None, "ci": [None, None]}
            cells += [c["value"], c["ci"][0], c["ci"][1], (r.get("paper") or {}).get(n),
                      (r.get("verdicts") or {}).get(n)]  # fmt: skip
        data.append(cells)
    return wandb.Table(columns=columns, data=data)


def mirror(path: Path, results: dict, mode: str) -> None:
    """Log the tables, native charts and images to W&B, in the analysed runs' group."""
    import wandb

    logger = results["logger"]
    wrun = wandb.init(
        project=logger.get("project", "self-moa-harness"),
        entity=logger.get("entity"),
        group=logger.get("group") or path.name,
        name=f"analysis-{path.name}",
        job_type="analysis",
        dir=str(path),
        mode=mode,
        config={"path": str(path), "embedding_model": results["embedding_model"]},
        id=run_id(str(path), "analysis"),  # a re-analysis continues the same run
        resume="allow",
    )
    exit_code = 1
    try:
        payload = {}
        for bench, b in results["benchmarks"].items():
            payload.update(charts(wandb, bench, b))
            for q, f in b.get("fits", {}).items():
                for key in FIT_KEYS:
                    wrun.summary[f"{bench}/fit_{q}/{key}"] = f[key]
        tables = {"table3": results.get("table3"), **(results.get("paper_tables") or {})}
        for name, t in tables.items():
            if not t:
                continue
            payload[name] = table3_table(wandb, t)
            for c in t["claims"]:
                wrun.summary[f"claims/{c['claim'][:60]}"] = c["verdict"]
        for image in results["images"]:
            payload[f"plots/{Path(image).stem}"] = wandb.Image(image)
        wrun.log(payload)
        exit_code = 0
    finally:
        wrun.finish(exit_code=exit_code)
