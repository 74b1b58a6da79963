"""Console tables of a study's typed summaries (harness.summary), and the study's report."""

from __future__ import annotations

from pathlib import Path

from harness.engines.base import PROMPT_TOO_LONG
from harness.summary import SYSTEM_FOLDED, ConfigSummary, MetricKeys, StageStats, StudyMetrics


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    line = lambda cells: "  ".join(str(c).rjust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def summary_table(summaries: dict[str, ConfigSummary], keys: MetricKeys) -> str:
    rows = []
    for label, m in summaries.items():
        rows.append(
            [
                label,
                m.items,
                f"{m.score:.3f}",
                f"[{m.ci_low:.2f}, {m.ci_high:.2f}]",
                f"{m.proposal_score:.3f}",
                f"{m.oracle_score:.3f}",
                m.calls,
                m.prompt_tokens,
                m.generated_tokens,
                f"{m.generate_s:.1f}",
                sum(v for k, v in m.outcomes.items() if k != "ok"),
                sum(m.events.values()),
                f"{m.truncated.proposals}/{m.truncated.aggregations}",
            ]
        )
    metric = keys.metric
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


def stage_table(stages: list[StageStats]) -> str:
    rows = [
        [
            s.stage,
            s.model,
            s.requests,
            s.sequences,
            s.found,
            f"{s.load_s:.1f}",
            f"{s.gen_s:.1f}",
            s.generated_tokens,
            f"{s.tokens_per_s:.1f}",
            s.failed.get(PROMPT_TOO_LONG, 0),
            ", ".join(f"{k} {v}" for k, v in sorted(s.failed.items()) if k != PROMPT_TOO_LONG) or 0,
            s.truncated,
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
        "failed",
        "cut",
    ]
    return format_table(headers, rows)


def study_report(
    metrics: StudyMetrics, model: str, warnings: list[str], store_dir: str, run_dir: str
) -> str:
    """What a study prints at its end: both tables, warnings, store, memory and time."""
    return (
        f"\n{metrics.keys.benchmark}: {metrics.items} items, model {model}\n\n"
        + summary_table(metrics.configurations, metrics.keys)
        + "\n\n"
        + stage_table(metrics.stages)
        + "\n\n"
        + "".join(f"warning: {line}\n" for line in warnings)
        + folded_line(metrics.stages)
        + f"store {store_dir}: found {metrics.found} generations, made {metrics.made}\n"
        f"peak memory {metrics.peak_rss_gib:.2f} GiB; "
        f"load {metrics.load_s:.1f} s; generate {metrics.generate_s:.1f} s\n"
        f"run directory: {Path(run_dir).resolve()}"
    )


def folded_line(stages: list[StageStats]) -> str:
    """Requests whose system text went to the first user turn (templates without that role)."""
    models = sorted({s.model for s in stages if s.folded})
    if not models:
        return ""
    n = sum(s.folded for s in stages)
    return (
        f"system text folded into the first user turn in {n} requests ({', '.join(models)}: "
        f"chat template without a system role; {SYSTEM_FOLDED} in metrics.json)\n"
    )
