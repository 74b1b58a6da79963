"""Metrics over per-item records: mean score with a 95% interval, cost, outcomes; tables."""

from __future__ import annotations

import math
from collections import Counter

from harness.records import Record


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion (statsmodels; sensible at 0/n and n/n)."""
    if n == 0:
        return (0.0, 1.0)
    from scipy.stats import norm
    from statsmodels.stats.proportion import proportion_confint

    alpha = 2 * (1 - norm.cdf(z))
    lo, hi = proportion_confint(successes, n, alpha=alpha, method="wilson")
    # exact bounds at 0/n and n/n (statsmodels leaves a rounding residue there)
    return (0.0 if successes <= 0 else float(lo), 1.0 if successes >= n else float(hi))


def mean_ci(scores: list[float], z: float = 1.96) -> tuple[float, float]:
    """95% interval of a mean score: Wilson for 0/1 scores, else the normal approximation."""
    n = len(scores)
    if n and all(x in (0.0, 1.0) for x in scores):
        return wilson(sum(scores), n, z)
    if n < 2:
        return (min(scores, default=0.0), max(scores, default=1.0))
    mean = sum(scores) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in scores) / (n - 1))
    return (mean - z * sd / math.sqrt(n), mean + z * sd / math.sqrt(n))


def mean(scores: list[float]) -> float:
    return sum(scores) / len(scores) if scores else 0.0


def truncations(rs: list[Record]) -> dict[str, int]:
    """Generations that stopped at their token cap (finish reason `length`), per stage kind."""
    judged = [r.judgment for r in rs] + [p.judgment for r in rs for p in r.proposals]
    return {
        "truncated/proposals": sum(p.finish_reason == "length" for r in rs for p in r.proposals),
        "truncated/aggregations": sum(g.finish_reason == "length" for r in rs for g in r.rounds),
        "truncated/judgements": sum((j or {}).get("truncated", 0) for j in judged),
    }


def summarize(records: list[Record], benchmark: str, metric: str = "acc") -> dict[str, dict]:
    """Per configuration: `<benchmark>/<metric>` and its CI, proposal mean, `cost/...`, outcomes.

    A score of None (a judge reply that could not be read) is left out of the means and counted
    in `scored` and the outcomes; the oracle is the best proposal per item. `truncated/<stage>`
    counts generations cut at max_tokens.
    """
    key = f"{benchmark}/{metric}"
    by_conf: dict[str, list[Record]] = {}
    for r in records:
        by_conf.setdefault(r.configuration, []).append(r)
    out = {}
    for label, rs in by_conf.items():
        scores = [r.score for r in rs if r.score is not None]
        lo, hi = mean_ci(scores)
        proposal_scores = [p.score for r in rs for p in r.proposals if p.score is not None]
        best = [max(ps) for r in rs if (ps := [p.score for p in r.proposals]) and None not in ps]
        out[label] = {
            "method": rs[0].method,
            "items": len(rs),
            "scored": len(scores),
            key: mean(scores),
            f"{key}_ci_low": lo,
            f"{key}_ci_high": hi,
            f"{benchmark}/proposal_{metric}": mean(proposal_scores),
            f"{benchmark}/oracle_{metric}": mean(best),
            "cost/calls": sum(r.calls for r in rs),
            "cost/prompt_tokens": sum(r.prompt_tokens for r in rs),
            "cost/generated_tokens": sum(r.generated_tokens for r in rs),
            "time/generate_s": sum(r.gen_s for r in rs),
            **truncations(rs),
            "outcomes": dict(Counter(r.outcome for r in rs)),
            "events": dict(Counter(e for r in rs for e in r.events)),
        }
        turns = sorted({r.turn for r in rs})
        if len(turns) > 1:
            for t in turns:
                turn_scores = [r.score for r in rs if r.turn == t]
                out[label][f"{key}_turn{t}"] = mean([x for x in turn_scores if x is not None])
    return out


TRUNCATION_KNOBS = {
    "propose": "method.max_tokens",
    "aggregate": "method.aggregator_max_tokens",
    "judge": "benchmark.judge_max_tokens",
}


def truncation_warnings(stages: list[dict], caps=(), share: float = 0.05) -> list[str]:
    """A line per stage where more than `share` of the generations stopped at the token cap.

    `caps`: the study's methods' token caps (harness.methods.TokenCap); one with a `note` is
    named beside the usual knob of its stage (e.g. a ranking reply capped in round 1).
    """
    lines = []
    for s in stages:
        if s["sequences"] and s.get("truncated", 0) > share * s["sequences"]:
            knob = TRUNCATION_KNOBS.get(s["stage"].split("-")[0], "max_tokens")
            notes = {f"{c.note}: method.{c.knob}" for c in caps if c.note and c.stage == s["stage"]}
            knob += "".join(f" ({note})" for note in sorted(notes))
            lines.append(
                f"{s['truncated']} of {s['sequences']} generations of stage {s['stage']} on "
                f"{s['model']} stopped at the token cap: raise {knob}"
            )
    return lines


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    line = lambda cells: "  ".join(str(c).rjust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def summary_table(summary: dict[str, dict], benchmark: str, metric: str = "acc") -> str:
    key = f"{benchmark}/{metric}"
    rows = []
    for label, m in summary.items():
        ci = f"[{m[f'{key}_ci_low']:.2f}, {m[f'{key}_ci_high']:.2f}]"
        bad = sum(v for k, v in m["outcomes"].items() if k != "ok")
        rows.append(
            [
                label,
                m["items"],
                f"{m[key]:.3f}",
                ci,
                f"{m[f'{benchmark}/proposal_{metric}']:.3f}",
                f"{m[f'{benchmark}/oracle_{metric}']:.3f}",
                m["cost/calls"],
                m["cost/prompt_tokens"],
                m["cost/generated_tokens"],
                f"{m['time/generate_s']:.1f}",
                bad,
                sum(m["events"].values()),
                "/".join(str(m[f"truncated/{s}"]) for s in ("proposals", "aggregations")),
            ]
        )
    headers = [
        "configuration",
        "items",
        metric,
        "95% CI",
        f"proposal {metric}",
        "oracle (best proposal)",
        "calls",
        "prompt tok",
        "gen tok",
        "gen s",
        "not ok",
        "events",
        "cut prop/agg",
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
            s.get("truncated", 0),
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
        "cut",
    ]
    return format_table(headers, rows)
