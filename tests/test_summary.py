"""Typed summaries (harness.summary): the keys of metrics.json and the W&B summary, round trips."""

from harness.summary import (
    ConfigSummary,
    MetricKeys,
    StageStats,
    StoreSkipped,
    StudyMetrics,
    Truncated,
    read_summaries,
)

KEYS = MetricKeys("mt_bench", "score")


def conf(method: str, score: float, turns: dict[int, float] | None = None) -> ConfigSummary:
    return ConfigSummary(
        method, 4, 3, score, score - 0.1, score + 0.1, 0.4, 0.6, 9, 900, 30, 1.5,
        Truncated(1, 2, 3), {"ok": 3, "judge_unparsed": 1}, {"context_shorten": 2}, turns or {},
    )  # fmt: skip


def study() -> StudyMetrics:
    stages = [
        StageStats("propose", "small", 1.0, 2.0, 4, 8, 3, 5, 100, 50, 0, 1),
        StageStats("aggregate", "big", 0.5, 1.0, 4, 4, 4, 0, 0, 0, 1, 2),
    ]
    return StudyMetrics(
        KEYS, 2, ["bad line 3"], {"ok": 4}, {"single": conf("single", 0.5),
        "self_moa(k=2)": conf("self_moa", 0.7, {1: 0.6, 2: 0.8})}, stages, {"small": 0.1},
        StoreSkipped(1, 0, 2), 1.25, [],
    )  # fmt: skip


def test_metrics_json_keys_are_the_ones_every_reader_knows():
    data = study().to_json()
    assert list(data) == [
        "benchmark", "metric", "items", "malformed_skipped", "score_outcomes", "configurations",
        "stages", "time/prepare_s", "time/load_s", "time/generate_s", "store/found",
        "store/made", "store/skipped", "truncated", "memory/peak_rss_gib",
        "engine/nondeterministic_models", "template/system_folded",
    ]  # fmt: skip
    assert data["metric"] == "mt_bench/score" and data["store/made"] == 5
    assert data["truncated"] == {"propose/small": 1, "aggregate/big": 2}
    assert data["store/skipped"] == {"torn": 1, "invalid": 0, "conflicts": 2}
    assert list(data["configurations"]["self_moa(k=2)"]) == [
        "method", "items", "scored", "mt_bench/score", "mt_bench/score_ci_low",
        "mt_bench/score_ci_high", "mt_bench/proposal_score", "mt_bench/oracle_score",
        "cost/calls", "cost/prompt_tokens", "cost/generated_tokens", "time/generate_s",
        "truncated/proposals", "truncated/aggregations", "truncated/judgements", "outcomes",
        "events", "mt_bench/score_turn1", "mt_bench/score_turn2",
    ]  # fmt: skip
    assert data["stages"][0]["tokens_per_s"] == 25.0


def test_a_summary_read_back_from_metrics_json_is_the_one_written():
    metrics = study()
    keys, summaries = read_summaries(metrics.to_json())
    assert keys == KEYS and summaries == metrics.configurations


def test_wandb_summary_puts_the_method_under_plain_keys_and_baselines_under_baseline():
    flat = study().scalars("self_moa(k=2)")
    assert flat["mt_bench/score"] == 0.7 and flat["baseline/mt_bench/score"] == 0.5
    assert flat["mt_bench/score_turn2"] == 0.8 and flat["truncated/judgements"] == 3
    assert not any(k.endswith(("method", "outcomes", "events")) for k in flat)
    assert flat["time/generate_s"] == 3.0  # the run's, over the configuration's 1.5
    assert flat["store/found"] == 7 and flat["memory/peak_rss_gib"] == 1.25


def test_wandb_summary_of_a_study_puts_every_configuration_under_its_label():
    flat = study().scalars(None)
    assert flat["single/mt_bench/score"] == 0.5 and flat["self_moa(k=2)/cost/calls"] == 9
    assert "mt_bench/score" not in flat
