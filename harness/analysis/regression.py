"""The paper's regression t = alpha*q + beta*d + gamma across the configurations of a benchmark.

q (proposal quality) and d (proposal diversity) are standardized over the configurations
(mean 0, sample standard deviation 1), t is the ensemble's score in percent, so alpha and beta
are "points of t per standard deviation of q or d", as in the paper's Table 4. Ordinary least
squares with `statsmodels`. The confidence of alpha - beta comes from a bootstrap over items:
the items are resampled with replacement (the same draw for every configuration), q, d and t
are recomputed as means over the drawn items (unscored items, NaN, left out), re-standardized
and refitted; the same draws give alpha's, beta's and R^2's intervals (set beside the paper's
Table 4 and 5 by harness.analysis.paper_fits). This refit bootstrap stays hand-written:
scipy.stats.bootstrap needs a statistic
defined on every resample, while a resample here can make q or d constant (the fit is then
undefined); those draws are skipped and counted instead of turning the interval into NaN.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

PARAMETERS = 3  # alpha, beta, gamma
MIN_CONFIGURATIONS = 10  # below this the fit runs, with a warning: too few points to trust


class FitError(ValueError):
    """The regression cannot be fitted on these configurations (and says why)."""


@dataclass(frozen=True)
class Fit:
    n: int  # configurations
    alpha: float
    beta: float
    gamma: float
    se_alpha: float
    se_beta: float
    p_alpha: float
    p_beta: float
    r2: float
    diff_ci: tuple[float, float] | None = None  # 95% bootstrap interval of alpha - beta
    bootstrap: int = 0  # bootstrap fits used
    alpha_ci: tuple[float, float] | None = None  # 95% bootstrap intervals, same draws
    beta_ci: tuple[float, float] | None = None
    r2_ci: tuple[float, float] | None = None

    @classmethod
    def from_json(cls, f: dict) -> Fit:
        """A Fit read back from analysis.json (intervals come back as lists)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in f.items()})


def standardize(x: np.ndarray, name: str) -> np.ndarray:
    sd = x.std(ddof=1)
    if not sd > 0:
        raise FitError(f"{name} is the same for every configuration: it cannot be standardized")
    return (x - x.mean()) / sd


def fit(t: np.ndarray, q: np.ndarray, d: np.ndarray, warn: bool = True) -> Fit:
    """OLS of t on standardized q and d; refuses with too few configurations to estimate SEs."""
    import statsmodels.api as sm

    n = len(t)
    if n <= PARAMETERS:
        raise FitError(
            f"{n} configurations: fitting t = alpha*q + beta*d + gamma needs more than "
            f"{PARAMETERS} (one per parameter plus at least one to estimate the errors)"
        )
    if warn and n < MIN_CONFIGURATIONS:
        log.warning(
            "only %d configurations: the regression is fitted but its errors are unreliable "
            "(the paper used about 70 per dataset; use at least %d)",
            n,
            MIN_CONFIGURATIONS,
        )
    t = np.asarray(t, dtype=float)
    if not t.std() > 0:
        raise FitError(
            f"t (the final score) is {t[0]:g} for every configuration: there is nothing for "
            "quality and diversity to explain (R^2 undefined)"
        )
    x = sm.add_constant(np.column_stack([standardize(q, "q"), standardize(d, "d")]))
    res = sm.OLS(t, x).fit()
    gamma, alpha, beta = res.params
    return Fit(
        n=n,
        alpha=float(alpha),
        beta=float(beta),
        gamma=float(gamma),
        se_alpha=float(res.bse[1]),
        se_beta=float(res.bse[2]),
        p_alpha=float(res.pvalues[1]),
        p_beta=float(res.pvalues[2]),
        r2=float(res.rsquared),
    )


def bootstrap_fits(per_item: np.ndarray, draws: int, seed: int = 0) -> tuple[np.ndarray, int]:
    """(alpha, beta, R^2) over `draws` resamplings of items.

    per_item: (configurations, items, 3) array of per-item (t, q, d), NaN where unscored.
    Returns a (fits, 3) array and the number of draws skipped because q or d came out constant
    (cannot standardize) or a configuration had no scored item among the drawn ones.
    """
    rng = np.random.default_rng(seed)
    n_items = per_item.shape[1]
    out, skipped = [], 0
    for _ in range(draws):
        drawn = per_item[:, rng.integers(0, n_items, n_items)]
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a point with every draw unscored
            means = np.nanmean(drawn, axis=1)
        if not np.isfinite(means).all():
            skipped += 1
            continue
        t, q, d = means.T
        try:
            x = np.column_stack([np.ones(len(t)), standardize(q, "q"), standardize(d, "d")])
        except FitError:
            skipped += 1
            continue
        coef = np.linalg.lstsq(x, t, rcond=None)[0]
        total = float(((t - t.mean()) ** 2).sum())
        r2 = 1 - float(((t - x @ coef) ** 2).sum()) / total if total > 0 else float("nan")
        out.append((coef[1], coef[2], r2))
    return np.array(out).reshape(-1, 3), skipped


def with_bootstrap(result: Fit, per_item: np.ndarray, draws: int, seed: int = 0) -> Fit:
    if draws <= 0:
        return result
    fits, skipped = bootstrap_fits(per_item, draws, seed)
    if skipped:
        log.warning(
            "bootstrap: %d of %d draws could not be refitted (constant q or d, or a "
            "configuration without a scored item among the drawn) and were skipped",
            skipped,
            draws,
        )
    if len(fits) == 0:
        return result

    def interval(values: np.ndarray) -> tuple[float, float] | None:
        values = values[np.isfinite(values)]
        if not len(values):
            return None
        lo, hi = np.percentile(values, [2.5, 97.5])
        return float(lo), float(hi)

    alpha, beta, r2 = fits.T
    return Fit(**{**result.__dict__, "diff_ci": interval(alpha - beta), "bootstrap": len(fits),
                  "alpha_ci": interval(alpha), "beta_ci": interval(beta),
                  "r2_ci": interval(r2)})  # fmt: skip


def pvalue(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def table4(fits: dict[str, Fit]) -> str:
    """The paper's Table 4 layout (coefficient +- SE, R^2), with p-values, n and alpha - beta."""
    lines = [
        "| dataset | α (quality) | β (diversity) | R² | p(α) | p(β) | configurations "
        "| α − β (95% bootstrap CI) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, f in fits.items():
        diff = f"{f.alpha - f.beta:.3f}"
        if f.diff_ci:
            diff += f" [{f.diff_ci[0]:.3f}, {f.diff_ci[1]:.3f}] ({f.bootstrap} draws)"
        lines.append(
            f"| {name} | {f.alpha:.3f} ± {f.se_alpha:.3f} | {f.beta:.3f} ± {f.se_beta:.3f} "
            f"| {f.r2:.3f} | {pvalue(f.p_alpha)} | {pvalue(f.p_beta)} | {f.n} | {diff} |"
        )
    return "\n".join(lines)
