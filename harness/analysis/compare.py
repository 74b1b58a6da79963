"""Comparisons across configurations: Self-MoA vs Mixed-MoA, score against k, and score against
compute (generated tokens, calls) with the Pareto front of the study.

Intervals over items come from `scipy.stats.bootstrap` (BCa, the items resampled); items
without a score are left out. A difference of two configurations is paired, item by item
(harness.analysis.paired: the paired bootstrap interval, and the exact McNemar test for 0/1
scores).
"""

from __future__ import annotations

import logging
from collections import defaultdict

from harness import methods
from harness.analysis.measure import Point, common_items, item_array
from harness.analysis.paired import bootstrap_ci, paired_difference

log = logging.getLogger(__name__)

COSTS = {"tokens": "generated tokens per item", "calls": "LLM calls per item"}


def compare_self_mixed(chosen: list[Point], draws: int, seed: int) -> dict | None:
    """Self-MoA on the best model (highest q) vs the best mixture, with bootstrap intervals."""
    selfs = [p for p in chosen if p.kind == "self"]
    mixed = [p for p in chosen if p.kind == "mixed"]
    if not selfs or not mixed:
        return None
    items = common_items(selfs + mixed)
    best_model = max(selfs, key=lambda p: p.mean("q", items))
    best_self = max(selfs, key=lambda p: p.mean("t", items))
    best_mixed = max(mixed, key=lambda p: p.mean("t", items))
    t_model = item_array([best_model], items, ("t",))[0, :, 0]
    t_mixed = item_array([best_mixed], items, ("t",))[0, :, 0]
    paired = paired_difference(t_model, t_mixed, draws, seed)  # NaN where either is unscored
    bars = []
    for role, p in (
        ("Self-MoA, best model", best_model),
        ("best Self-MoA", best_self),
        ("best Mixed-MoA", best_mixed),
    ):
        if role == "best Self-MoA" and p is best_model:
            continue
        values = item_array([p], items, ("t",))[0, :, 0]
        bars.append(
            {
                "role": role,
                "label": p.label,
                "kind": p.kind,
                "t": p.mean("t", items),
                "ci": bootstrap_ci(values, draws, seed),
            }
        )
    t_best = best_model.mean("t", items)
    return {
        "bars": bars,
        "self_best_model": best_model.label,
        "best_mixture": best_mixed.label,
        "difference": paired.difference,
        "difference_ci": paired.ci,
        "wins": paired.wins,
        "losses": paired.losses,
        "p_mcnemar": paired.p_mcnemar,
        "mixtures_beaten": sum(t_best > p.mean("t", items) for p in mixed),
        "mixtures_tied": sum(t_best == p.mean("t", items) for p in mixed),
        "mixtures": len(mixed),
        "items": paired.items,
    }


def model_name(model: str) -> str:
    return model.split(":")[-1][:28]


def k_lines(found: list[Point], draws: int = 0, seed: int = 0) -> dict[str, list[dict]]:
    """t (with its 95% bootstrap interval over items) and tokens against k per method and
    proposer model, for the methods that declare `k_lines` (Self-MoA and Self-MoA-Seq): every k
    the runs hold, a curve per method."""
    lines: dict[str, list[dict]] = defaultdict(list)
    for p in found:
        if methods.declares(p.method, "k_lines") and p.kind == "self":
            t = item_array([p], sorted(p.per_item), ("t",))[0, :, 0]
            lines[f"{p.method} ({model_name(p.models[0])})"].append(
                {"k": p.k, "t": p.mean("t"), "tokens": p.mean("tokens"),
                 "ci": list(bootstrap_ci(t, draws, seed)), "label": p.label}
            )  # fmt: skip
    return {name: sorted(rows, key=lambda r: r["k"]) for name, rows in lines.items()}


def baselines(found: list[Point], draws: int = 0, seed: int = 0) -> list[dict]:
    """The single-model reference rows (`single`, greedy): each model's t with its interval,
    drawn as a line beside the ensembles."""
    out = []
    for p in found:
        if methods.is_reference(p.method) and p.models:
            t = item_array([p], sorted(p.per_item), ("t",))[0, :, 0]
            out.append({"label": p.label, "model": model_name(p.models[0]), "t": p.mean("t"),
                        "ci": list(bootstrap_ci(t, draws, seed))})  # fmt: skip
    return out


def pareto_front(costs: list[float], scores: list[float]) -> list[bool]:
    """True where no other point costs no more and scores no less (and differs in one)."""
    out = []
    for c, s in zip(costs, scores, strict=True):
        if c != c or s != s:
            out.append(False)
            continue
        out.append(
            not any(
                c2 <= c and s2 >= s and (c2 < c or s2 > s)
                for c2, s2 in zip(costs, scores, strict=True)
                if c2 == c2 and s2 == s2
            )
        )
    return out


def compute_matched(found: list[Point]) -> list[dict]:
    """Every configuration's t against tokens and calls per item, with its Pareto membership."""
    rows = [
        {
            "label": p.label,
            "method": p.method,
            "kind": p.kind,
            "k": p.k,
            "t": p.mean("t"),
            "tokens": p.mean("tokens"),
            "calls": p.mean("calls"),
        }
        for p in found
    ]
    for cost in COSTS:
        front = pareto_front([r[cost] for r in rows], [r["t"] for r in rows])
        for r, on in zip(rows, front, strict=True):
            r[f"front_{cost}"] = on
    return sorted(rows, key=lambda r: (r["tokens"], -r["t"]))
