"""The regressions of one benchmark: Table 4 (t on standardized q and d) and Table 5 (the same
fit with each quality measure in q's place, K = 1..4; R^2 compared).

Points enter only with scores: a configuration with no scored item (every t NaN) or no scored
proposal (q NaN) is dropped with a warning; otherwise its unscored items are left out of its
means (harness.analysis.measure).
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from harness.analysis.measure import Point, common_items, item_array
from harness.analysis.quality import QUALITY_MEASURES
from harness.analysis.regression import Fit, FitError, fit, with_bootstrap

log = logging.getLogger(__name__)


def regression_set(
    found: list[Point], methods: list[str], all_k: bool, all_aggregators: bool = False
) -> list[Point]:
    """The points of `methods` with proposals, (unless all_k) of the most common k and (unless
    all_aggregators) of the most common aggregator: two aggregators of the same proposals share
    (q, d), so fitting both counts each proposal set twice."""
    chosen = [p for p in found if p.method in methods and p.kind != "none"]
    if chosen and not all_aggregators:
        aggregator = Counter(p.aggregator for p in chosen).most_common(1)[0][0]
        dropped = [p.label for p in chosen if p.aggregator != aggregator]
        if dropped:
            log.info(
                "regression over the configurations aggregated by %s (one aggregator per fit); "
                "left out: %s", aggregator, dropped,
            )  # fmt: skip
        chosen = [p for p in chosen if p.aggregator == aggregator]
    if chosen and not all_k:
        k = Counter(p.k for p in chosen).most_common(1)[0][0]
        dropped = [p.label for p in chosen if p.k != k]
        if dropped:
            log.info(
                "regression over k=%d configurations; not comparable, left out: %s", k, dropped
            )
        chosen = [p for p in chosen if p.k == k]
    return chosen


def fittable(chosen: list[Point]) -> tuple[list[Point], dict[str, str]]:
    """The points with scores, and why each other one was dropped (warned)."""
    kept, dropped = [], {}
    for p in chosen:
        if not p.scored_items():
            dropped[p.label] = "no scored item"
        elif p.mean("q") != p.mean("q"):
            dropped[p.label] = "no scored proposal"
        else:
            kept.append(p)
    for label, why in dropped.items():
        log.warning("%s dropped from the fit: %s", label, why)
    return kept, dropped


def fit_benchmark(
    chosen: list[Point], draws: int, seed: int
) -> tuple[dict[str, Fit], dict[str, str]]:
    """Every quality measure's fit (bootstrap of alpha - beta on q's), and the measures refused.

    Raises FitError when the plain q fit is refused (too few points, constant t, q or d).
    """
    if not chosen:
        raise FitError("0 configurations with scores: nothing to fit")
    items = common_items(chosen)
    t = np.array([p.mean("t", items) for p in chosen])
    d = np.array([p.mean("d", items) for p in chosen])
    qualities = [p.quality(items) for p in chosen]
    fits, refused = {}, {}
    for name in QUALITY_MEASURES:
        q = np.array([x[name] for x in qualities])
        if not np.isfinite(np.concatenate([t, q, d])).all():  # nothing scored on common items
            missing = [
                p.label for p, *v in zip(chosen, t, q, d, strict=True) if not np.isfinite(v).all()
            ]
            if name == "q":
                raise FitError(f"no scored value on the common items for {missing}")
            refused[name] = f"no value on the common items for {missing}"
            continue
        if name == "q":
            result = fit(t, q, d)  # FitError propagates: no regression at all
            fits[name] = with_bootstrap(
                result, item_array(chosen, items, ("t", "q", "d")), draws, seed
            )
            continue
        try:
            fits[name] = fit(t, q, d, warn=False)
        except FitError as e:
            refused[name] = str(e)
    return fits, refused
