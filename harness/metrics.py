"""Metrics over per-item records: accuracy with a Wilson interval, cost, outcomes; tables."""

from __future__ import annotations

import math
from collections import Counter


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (sensible at 0/n and n/n, unlike Wald's)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarize(records: list[dict], benchmark: str) -> dict[str, dict]:
    """Per configuration: `<benchmark>/acc` and its CI, proposal accuracy, `cost/...`, outcomes."""
    by_conf: dict[str, list[dict]] = {}
    for r in records:
        by_conf.setdefault(r["configuration"], []).append(r)
    out = {}
    for label, rs in by_conf.items():
        n = len(rs)
        correct = sum(r["score"] for r in rs)
        lo, hi = wilson(correct, n)
        proposal_scores = [p["score"] for r in rs for p in r["proposals"]]
        out[label] = {
            "method": rs[0]["method"],
            "items": n,
            f"{benchmark}/acc": correct / n if n else 0.0,
            f"{benchmark}/acc_ci_low": lo,
            f"{benchmark}/acc_ci_high": hi,
            f"{benchmark}/proposal_acc": (
                sum(proposal_scores) / len(proposal_scores) if proposal_scores else 0.0
            ),
            "cost/calls": sum(r["calls"] for r in rs),
            "cost/prompt_tokens": sum(r["prompt_tokens"] for r in rs),
            "cost/generated_tokens": sum(r["generated_tokens"] for r in rs),
            "time/generate_s": sum(r["gen_s"] for r in rs),
            f"{benchmark}/oracle_acc": sum(
                max((p["score"] for p in r["proposals"]), default=0.0) for r in rs
            )
            / n,
            "outcomes": dict(Counter(r["outcome"] for r in rs)),
            "events": dict(Counter(e for r in rs for e in r.get("events", []))),
        }
    return out


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    line = lambda cells: "  ".join(str(c).rjust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def summary_table(summary: dict[str, dict], benchmark: str) -> str:
    rows = []
    for label, m in summary.items():
        acc = m[f"{benchmark}/acc"]
        ci = f"[{m[f'{benchmark}/acc_ci_low']:.2f}, {m[f'{benchmark}/acc_ci_high']:.2f}]"
        bad = sum(v for k, v in m["outcomes"].items() if k != "ok")
        rows.append(
            [
                label,
                m["items"],
                f"{acc:.3f}",
                ci,
                f"{m[f'{benchmark}/proposal_acc']:.3f}",
                f"{m[f'{benchmark}/oracle_acc']:.3f}",
                m["cost/calls"],
                m["cost/prompt_tokens"],
                m["cost/generated_tokens"],
                f"{m['time/generate_s']:.1f}",
                bad,
                sum(m["events"].values()),
            ]
        )
    headers = [
        "configuration",
        "items",
        "acc",
        "95% CI",
        "proposal acc",
        "oracle pass@k",
        "calls",
        "prompt tok",
        "gen tok",
        "gen s",
        "not ok",
        "events",
    ]
    return format_table(headers, rows)


def stage_table(stages: list[dict]) -> str:
    rows = [
        [
            s["stage"],
            s["model"],
            s["requests"],
            s["sequences"],
            s["found"],
            f"{s['load_s']:.1f}",
            f"{s['gen_s']:.1f}",
            s["generated_tokens"],
            f"{s['generated_tokens'] / s['gen_s'] if s['gen_s'] else 0:.1f}",
            s["skipped"],
        ]
        for s in stages
    ]
    headers = [
        "stage",
        "model",
        "requests",
        "sequences",
        "from store",
        "load s",
        "gen s",
        "gen tok",
        "tok/s",
        "too long",
    ]
    return format_table(headers, rows)
