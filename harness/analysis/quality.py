"""Quality measures of a configuration's proposals: the mean, power means, and the paper's K-Norms.

Three families, each for K = 1..4 (K = 1 is the plain mean for the first two):
  q_K       per-item power mean: (1/n sum_i s_i^K)^(1/K) of one item's n proposal scores s_i,
            averaged over items. It drifts towards "any proposal right" as K grows.
  knorm_K   K-Norm over the proposer models: Q_m is model m's mean proposal score on the items,
            w_m its multiplicity in the mixture (iimmdd: w_i = w_m = w_d = 2);
            knorm_K = (sum_m w_m Q_m^K / sum_m w_m)^(1/K). This is our reading of the paper's
            K-Norm (its formula was not recovered): a mixture's quality from its members'.
  centered_K  Centered-1/K-Norm: qbar - (1 - 1/K) (sum_m w_m |Q_m - qbar|^(1/K) / sum_m w_m)^K,
            qbar = knorm_1: the mean quality minus a share (1 - 1/K) of the power mean of
            order 1/K of the members' distances from it, so a mixture with a weak member scores
            below its mean, more so as K grows (an even pair tends to its weaker member). At
            K = 1 it is the plain mean, as the paper's Table 5 has it (its K = 1 column is
            Table 4's R^2). Our own construction from the name (centered on the mean, order
            1/K); the paper's formula was not recovered.
For one proposer model (Self-MoA) knorm_K = centered_K = that model's quality.
"""

from __future__ import annotations

import numpy as np

K_NORMS = (1, 2, 3, 4)

FAMILIES = {  # Table 5 rows: family -> (name in the report, formula)
    "q": (
        "per-item power mean",
        "q_K = mean over items of (1/n Σ_i s_i^K)^(1/K), s_i the item's n proposal scores",
    ),
    "knorm": (
        "K-Norm of the proposer models (our reading of the paper)",
        "knorm_K = (Σ_m w_m Q_m^K / Σ_m w_m)^(1/K), Q_m model m's mean proposal score, "
        "w_m its multiplicity in the mixture",
    ),
    "centered": (
        "Centered-1/K-Norm (our construction)",
        "centered_K = q̄ − (1 − 1/K)·(Σ_m w_m |Q_m − q̄|^(1/K) / Σ_m w_m)^K, q̄ = knorm_1 "
        "(the mean at K = 1)",
    ),
}


def measure_name(family: str, k: int) -> str:
    """The key of one quality measure: q, q2..q4, knorm1..4, centered1..4."""
    if family == "q":
        return "q" if k == 1 else f"q{k}"
    return f"{family}{k}"


QUALITY_MEASURES = tuple(measure_name(f, k) for f in FAMILIES for k in K_NORMS)


class QualityError(ValueError):
    """Scores a power mean cannot take (negative)."""


def power_mean(scores: list[float] | np.ndarray, k: float, weights=None) -> float:
    """(Σ w s^k / Σ w)^(1/k) of scores >= 0; equal weights by default."""
    s = np.asarray(scores, dtype=float)
    if (s < 0).any():
        raise QualityError(f"a power mean needs scores >= 0, got {s.min()}")
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=float)
    return float((np.sum(w * s**k) / np.sum(w)) ** (1 / k))


def k_norm(qualities: dict[str, float], weights: dict[str, float], k: int) -> float:
    """K-Norm of the models' qualities, weighted by their multiplicities; NaN without any."""
    models = [m for m in qualities if qualities[m] == qualities[m] and weights.get(m, 0) > 0]
    if not models:
        return float("nan")
    return power_mean([qualities[m] for m in models], k, [weights[m] for m in models])


def centered_norm(qualities: dict[str, float], weights: dict[str, float], k: int) -> float:
    """Centered-1/K-Norm: the weighted mean minus (1 - 1/K) times the order-1/K power mean of
    the members' distances from it (the plain mean at K = 1)."""
    models = [m for m in qualities if qualities[m] == qualities[m] and weights.get(m, 0) > 0]
    if not models:
        return float("nan")
    q = np.array([qualities[m] for m in models])
    w = np.array([weights[m] for m in models], dtype=float)
    mean = float(np.sum(w * q) / np.sum(w))
    return mean - (1 - 1 / k) * power_mean(np.abs(q - mean), 1 / k, w)


def model_measures(qualities: dict[str, float], weights: dict[str, float]) -> dict[str, float]:
    """knorm_K and centered_K for K = 1..4 from per-model qualities and multiplicities."""
    out = {}
    for k in K_NORMS:
        out[measure_name("knorm", k)] = k_norm(qualities, weights, k)
        out[measure_name("centered", k)] = centered_norm(qualities, weights, k)
    return out
