"""Metrics over per-item records: mean score with a 95% interval, cost, outcomes (typed:
harness.summary); warnings of generations cut at their token cap."""

from __future__ import annotations

import math
import resource
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from harness.records import Record
from harness.summary import (
    ConfigSummary,
    MetricKeys,
    StageStats,
    StoreSkipped,
    StudyMetrics,
    Truncated,
)

if TYPE_CHECKING:
    from harness.benchmarks import Benchmark
    from harness.methods import TokenCap
    from harness.store import Store


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


def truncations(rs: list[Record]) -> Truncated:
    """Generations that stopped at their token cap (finish reason `length`), per stage kind."""
    judged = [r.judgment for r in rs] + [p.judgment for r in rs for p in r.proposals]
    return Truncated(
        proposals=sum(p.finish_reason == "length" for r in rs for p in r.proposals),
        aggregations=sum(g.finish_reason == "length" for r in rs for g in r.rounds),
        judgements=sum((j or {}).get("truncated", 0) for j in judged),
    )


def summarize(records: list[Record]) -> dict[str, ConfigSummary]:
    """Per configuration: its mean score and CI, proposal mean, oracle, cost, outcomes.

    A score of None (a judge reply that could not be read) is left out of the means and counted
    in `scored` and the outcomes; the oracle is the best proposal per item. `truncated` counts
    generations cut at max_tokens.
    """
    by_conf: dict[str, list[Record]] = {}
    for r in records:
        by_conf.setdefault(r.configuration, []).append(r)
    out = {}
    for label, rs in by_conf.items():
        scores = [r.score for r in rs if r.score is not None]
        lo, hi = mean_ci(scores)
        proposal_scores = [p.score for r in rs for p in r.proposals if p.score is not None]
        best = [max(ps) for r in rs if (ps := [p.score for p in r.proposals]) and None not in ps]
        turns = sorted({r.turn for r in rs})
        by_turn = {t: [r.score for r in rs if r.turn == t] for t in turns if len(turns) > 1}
        out[label] = ConfigSummary(
            method=rs[0].method,
            items=len(rs),
            scored=len(scores),
            score=mean(scores),
            ci_low=lo,
            ci_high=hi,
            proposal_score=mean(proposal_scores),
            oracle_score=mean(best),
            calls=sum(r.calls for r in rs),
            prompt_tokens=sum(r.prompt_tokens for r in rs),
            generated_tokens=sum(r.generated_tokens for r in rs),
            generate_s=sum(r.gen_s for r in rs),
            truncated=truncations(rs),
            outcomes=dict(Counter(r.outcome for r in rs)),
            events=dict(Counter(e for r in rs for e in r.events)),
            turn_scores={t: mean([x for x in xs if x is not None]) for t, xs in by_turn.items()},
        )
    return out


def study_metrics(
    records: list[Record],
    bench: Benchmark,
    items: int,
    stages: list[StageStats],
    store: Store,
    prepare_s: dict[str, float],
    nondeterministic: list[str],
) -> StudyMetrics:
    """A finished study's metrics (metrics.json): summaries, stages, store, memory."""
    return StudyMetrics(
        keys=MetricKeys(bench.name, bench.metric),
        items=items,
        malformed_skipped=bench.report.skipped,
        score_outcomes=dict(bench.score_outcomes),
        configurations=summarize(records),
        stages=stages,
        prepare_s=prepare_s,
        store_skipped=StoreSkipped(store.torn, store.invalid, store.conflicts),
        peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        nondeterministic_models=nondeterministic,
    )


TRUNCATION_KNOBS = {
    "propose": "method.max_tokens",
    "aggregate": "method.aggregator_max_tokens",
    "judge": "benchmark.judge_max_tokens",
}


def truncation_warnings(
    stages: list[StageStats], caps: Iterable[TokenCap] = (), share: float = 0.05
) -> list[str]:
    """A line per stage where more than `share` of the generations stopped at the token cap.

    `caps`: the study's methods' token caps (harness.methods.TokenCap); one with a `note` is
    named beside the usual knob of its stage (e.g. a ranking reply capped in round 1).
    """
    lines = []
    for s in stages:
        if s.sequences and s.truncated > share * s.sequences:
            knob = TRUNCATION_KNOBS.get(s.stage.split("-")[0], "max_tokens")
            notes = {f"{c.note}: method.{c.knob}" for c in caps if c.note and c.stage == s.stage}
            knob += "".join(f" ({note})" for note in sorted(notes))
            lines.append(
                f"{s.truncated} of {s.sequences} generations of stage {s.stage} on "
                f"{s.model} stopped at the token cap: raise {knob}"
            )
    return lines
