"""Paired statistics: every configuration of a study answers the same items, so a difference
between two configurations is measured item by item.

    mcnemar_exact(x, y)            exact McNemar test of two 0/1 score vectors (statsmodels):
                                   the discordant items only, a two-sided binomial test at 1/2
    paired_difference(x, y, ...)   mean of x - y over the items scored in both, its 95% paired
                                   bootstrap interval (the items resampled, both members of a
                                   pair together), wins/losses, and McNemar's p for 0/1 scores
    resampled_means(columns, ...)  the joint bootstrap of many configurations on many benchmarks:
                                   one resampling of the items per benchmark and draw, shared by
                                   every configuration, so any difference of means (or of means
                                   of means, like Table 3's Average) computed per draw is paired

Intervals are percentile intervals of `draws` resamplings with a seeded generator (the paired
interval of one difference: scipy's BCa on the per-item differences, as
harness.analysis.compare.bootstrap_ci). An unpaired interval of the same difference treats the
two configurations' items as independent samples and is far wider when they agree on most
items, which they do.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.stats import bootstrap

CONFIDENCE = 0.95


def is_binary(*arrays: np.ndarray) -> bool:
    """True when every non-NaN value is 0 or 1 (accuracy-like scores, in any unit scale)."""
    values = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays])
    values = values[~np.isnan(values)]
    if not len(values):
        return False
    top = values.max() if values.max() > 0 else 1.0
    return bool(np.isin(values / top, (0.0, 1.0)).all())


def discordant(x: np.ndarray, y: np.ndarray) -> tuple[int, int]:
    """(items where x is right and y wrong, items where y is right and x wrong); NaN left out."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    both = ~(np.isnan(x) | np.isnan(y))
    x, y = x[both] > 0, y[both] > 0
    return int((x & ~y).sum()), int((~x & y).sum())


def mcnemar_exact(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided exact McNemar p-value of two paired 0/1 score vectors (1.0 with no discordant
    item: nothing tells them apart)."""
    from statsmodels.stats.contingency_tables import mcnemar

    b, c = discordant(x, y)
    return float(mcnemar([[0, b], [c, 0]], exact=True).pvalue)


def bootstrap_ci(values: np.ndarray, draws: int, seed: int) -> tuple[float, float]:
    """95% BCa interval of the mean of per-item `values` (NaN left out) over item resamplings."""
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return (float("nan"), float("nan"))
    mean = float(values.mean())
    spread = np.ptp(values) if len(values) else 0.0
    # no spread (up to rounding): nothing to resample
    if draws <= 0 or len(values) < 2 or spread <= 1e-9 * max(1.0, float(np.abs(values).max())):
        return (mean, mean)
    res = bootstrap(
        (values,), np.mean, n_resamples=draws, rng=np.random.default_rng(seed), method="BCa"
    )
    lo, hi = res.confidence_interval
    if not (np.isfinite(lo) and np.isfinite(hi)):  # BCa degenerate on few distinct values
        res = bootstrap(
            (values,), np.mean, n_resamples=draws, rng=np.random.default_rng(seed),
            method="percentile",
        )  # fmt: skip
        lo, hi = res.confidence_interval
    return (float(lo), float(hi))


def percentile_interval(draws: np.ndarray) -> tuple[float, float]:
    """The central 95% of bootstrap draws (NaN draws left out); (nan, nan) when none."""
    draws = np.asarray(draws, dtype=float)
    draws = draws[~np.isnan(draws)]
    if not len(draws):
        return (float("nan"), float("nan"))
    tail = (1 - CONFIDENCE) / 2 * 100
    lo, hi = np.percentile(draws, [tail, 100 - tail])
    return (float(lo), float(hi))


@dataclass(frozen=True)
class PairedDifference:
    difference: float  # mean of x - y over the items scored in both
    ci: tuple[float, float]  # 95% paired bootstrap interval
    items: int  # items scored in both
    wins: int  # items where x scores higher
    losses: int  # items where y scores higher
    p_mcnemar: float | None  # exact McNemar p (0/1 scores only)

    def to_json(self) -> dict:
        return {
            "difference": self.difference,
            "ci": list(self.ci),
            "items": self.items,
            "wins": self.wins,
            "losses": self.losses,
            "p_mcnemar": self.p_mcnemar,
        }


def paired_difference(
    x: np.ndarray, y: np.ndarray, draws: int = 1000, seed: int = 0
) -> PairedDifference:
    """x - y item by item (the same items, in the same order), with its paired interval."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired scores need the same items: {x.shape} against {y.shape}")
    diff = x - y
    both = ~np.isnan(diff)
    if not both.any():
        nan = float("nan")
        return PairedDifference(nan, (nan, nan), 0, 0, 0, None)
    return PairedDifference(
        difference=float(diff[both].mean()),
        ci=bootstrap_ci(diff, draws, seed),
        items=int(both.sum()),
        wins=int((diff[both] > 0).sum()),
        losses=int((diff[both] < 0).sum()),
        p_mcnemar=mcnemar_exact(x, y) if is_binary(x[both], y[both]) else None,
    )


def resampled_means(
    columns: dict[str, np.ndarray], draws: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """Per benchmark, (draws, configurations) means over resampled items.

    `columns[bench]` is a (configurations, items) array of per-item scores (NaN: unscored, left
    out of the mean). Each draw resamples each benchmark's items with replacement once, for
    every configuration alike: differences computed from the same draw are paired.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for bench, scores in columns.items():
        n = scores.shape[1]
        idx = rng.integers(0, n, size=(draws, n))
        picked = scores[:, idx]  # (configurations, draws, items)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN resample: NaN
            out[bench] = np.nanmean(picked, axis=2).T
    return out
