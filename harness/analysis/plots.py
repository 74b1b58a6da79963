"""The analysis figures (PNG, matplotlib's Agg backend): q-d plane, Self vs Mixed, score vs k,
score vs compute with the Pareto front.

Each function takes plain rows (dicts as built by harness.analysis) and a path, draws one figure,
writes it, and returns the path; none needs a display.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MARKERS = {"self": ("*", 220, "Self-MoA"), "mixed": ("o", 70, "Mixed-MoA")}


def qd_plane(rows: list[dict], benchmark: str, path: Path) -> Path:
    """Each configuration at (q, d), coloured by t; Self-MoA as stars, Mixed-MoA as dots."""
    fig, ax = plt.subplots(figsize=(7, 5))
    ts = [r["t"] for r in rows]
    lo, hi = min(ts), max(ts)
    for kind, (marker, size, name) in MARKERS.items():
        sel = [r for r in rows if r["kind"] == kind]
        if not sel:
            continue
        points = ax.scatter(
            [r["q"] for r in sel],
            [r["d"] for r in sel],
            c=[r["t"] for r in sel],
            vmin=lo,
            vmax=hi if hi > lo else lo + 1,
            cmap="viridis",
            marker=marker,
            s=size,
            edgecolors="black",
            linewidths=0.5,
            label=name,
        )
        for r in sel:
            ax.annotate(r["short"], (r["q"], r["d"]), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")  # fmt: skip
    fig.colorbar(points, ax=ax, label="t (ensemble score)")
    ax.set_xlabel("q: mean proposal score")
    ax.set_ylabel("d: Vendi score of the proposals (embeddings)")
    ax.set_title(f"{benchmark}: quality vs diversity of the proposals")
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def self_vs_mixed(bars: dict[str, list[dict]], path: Path) -> Path:
    """Per benchmark: bars with 95% bootstrap intervals, e.g. best Self-MoA vs best Mixed-MoA."""
    fig, axes = plt.subplots(1, len(bars), figsize=(4.5 * len(bars), 4), squeeze=False)
    for ax, (benchmark, rows) in zip(axes[0], bars.items(), strict=True):
        xs = range(len(rows))
        ax.bar(
            xs,
            [r["t"] for r in rows],
            yerr=[[r["t"] - r["ci"][0] for r in rows], [r["ci"][1] - r["t"] for r in rows]],
            color=["tab:orange" if r["kind"] == "self" else "tab:blue" for r in rows],
            capsize=6,
        )
        ax.set_xticks(list(xs), [f"{r['role']}\n{r['label']}" for r in rows], fontsize=7)
        ax.set_ylabel("t")
        ax.set_title(benchmark)
    fig.suptitle("Self-MoA vs Mixed-MoA (95% bootstrap intervals over items)", fontsize=10)
    return _save(fig, path)


def score_vs_k(lines: dict[str, list[dict]], benchmark: str, path: Path) -> Path:
    """t against k and against generated tokens per item, one line per (method, model)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name, rows in lines.items():
        rows = sorted(rows, key=lambda r: r["k"])
        left.plot([r["k"] for r in rows], [r["t"] for r in rows], marker="o", label=name)
        right.plot([r["tokens"] for r in rows], [r["t"] for r in rows], marker="o", label=name)
    left.set_xlabel("k (proposals)")
    right.set_xlabel("generated tokens per item (proposals + aggregation)")
    for ax in (left, right):
        ax.set_ylabel("t")
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{benchmark}: Self-MoA and Self-MoA-Seq against k and compute", fontsize=10)
    return _save(fig, path)


def compute_matched(rows: list[dict], benchmark: str, path: Path) -> Path:
    """t against generated tokens and against calls per item; the Pareto front as a step line."""
    colours = {"self": "tab:orange", "mixed": "tab:blue", "none": "tab:gray"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, cost, name in zip(
        axes, ("tokens", "calls"), ("generated tokens per item", "LLM calls per item"), strict=True
    ):
        for r in rows:
            on = r[f"front_{cost}"]
            ax.scatter(r[cost], r["t"], c=colours[r["kind"]], s=60 if on else 25,
                       edgecolors="black" if on else "none", zorder=3)  # fmt: skip
            if on:
                ax.annotate(r["label"], (r[cost], r["t"]), fontsize=6, xytext=(3, 3),
                            textcoords="offset points")  # fmt: skip
        front = sorted((r[cost], r["t"]) for r in rows if r[f"front_{cost}"])
        if front:
            ax.step(
                *zip(*front, strict=True), where="post", color="black", lw=1, label="Pareto front"
            )
        for kind, colour in colours.items():
            ax.scatter([], [], c=colour, label={"self": "one proposer model", "mixed": "mixture",
                                                "none": "no proposals"}[kind])  # fmt: skip
        ax.set_xlabel(name)
        ax.set_ylabel("t")
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{benchmark}: score against compute (front: nothing cheaper scores higher)",
                 fontsize=10)  # fmt: skip
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
