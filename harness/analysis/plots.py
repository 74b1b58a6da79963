"""The analysis figures (PNG, matplotlib's Agg backend): q-d plane, Self vs Mixed, score vs k,
score vs compute with the Pareto front.

Each function takes plain rows (dicts as built by harness.analysis) and a path, draws one figure,
writes it, and returns the path; none needs a display. Every figure names t by its metric
(`axis`, e.g. "t: gsm8k/acc (%)"), draws 95% intervals where it has them, lists in its legend
only what it shows, and writes one label per position: configurations that share a point (the
same cost, the same q and d) get one label listing them, not labels printed over each other.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MARKERS = {"self": ("*", 220, "Self-MoA (one proposer model)"), "mixed": ("o", 70, "Mixed-MoA")}
KIND_COLOURS = {"self": "tab:orange", "mixed": "tab:blue", "none": "tab:gray"}
KIND_NAMES = {"self": "one proposer model", "mixed": "mixture", "none": "no proposals"}
# label positions tried around a point, in typographic points (nearest first)
CANDIDATES = [(dx, dy) for r in (4, 12, 22) for dx in (r, -r) for dy in (r * 0.6, -r * 0.6)]
MAX_NAMES = 4  # names listed at one position, then "+N"


def _overlap(a: tuple, b: tuple) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _box(px: float, py: float, dx: float, dy: float, w: float, h: float) -> tuple:
    """A label's box in display space: its anchor offset by (dx, dy), growing away from it."""
    left = px + dx - (w if dx < 0 else 0)
    bottom = py + dy - (h if dy < 0 else 0)
    return (left, bottom, left + w, bottom + h)


def label_points(ax, points: list[tuple[float, float, str]], fontsize: float = 6) -> None:
    """One label per distinct position (the names there joined, at most MAX_NAMES), each put at
    the first of CANDIDATES around its point where it overlaps no label placed before (else
    where it overlaps least), in display space with the axes' final limits."""
    at: dict[tuple[float, float], list[tuple[float, float, str]]] = defaultdict(list)
    for x, y, name in points:
        if x == x and y == y:
            at[(round(x, 6), round(y, 6))].append((x, y, name))
    if not at:
        return
    ax.figure.canvas.draw()  # fixes the limits: display positions are final
    scale = ax.figure.dpi / 72
    char_w, line_h = 0.55 * fontsize * scale, 1.25 * fontsize * scale
    placed: list[tuple] = []
    for (x, y), group in sorted(at.items()):
        names = [name for _, _, name in group]
        more = len(names) - MAX_NAMES
        text = ", ".join(names[:MAX_NAMES]) + (f" +{more}" if more > 0 else "")
        px, py = ax.transData.transform((x, y))
        width = len(text) * char_w

        boxes = [_box(px, py, dx * scale, dy * scale, width, line_h) for dx, dy in CANDIDATES]
        costs = [sum(_overlap(c, b) for b in placed) for c in boxes]
        best = costs.index(min(costs))
        dx, dy = CANDIDATES[best]
        placed.append(boxes[best])
        ax.annotate(text, (x, y), fontsize=fontsize, xytext=(dx, dy), textcoords="offset points",
                    ha="left" if dx > 0 else "right", va="bottom" if dy > 0 else "top")  # fmt: skip


def qd_plane(rows: list[dict], benchmark: str, path: Path, axis: str = "t") -> Path:
    """Each configuration at (q, d), coloured by t; Self-MoA as stars, Mixed-MoA as dots; the
    configurations left out of the fit (another k or aggregator) hollow."""
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    ts = [r["t"] for r in rows if r["t"] == r["t"]]
    lo, hi = (min(ts), max(ts)) if ts else (0.0, 1.0)
    points = None
    for kind, (marker, size, name) in MARKERS.items():
        for in_fit in (True, False):
            sel = [r for r in rows if r["kind"] == kind and r.get("in_fit", True) == in_fit]
            if not sel:
                continue
            points = ax.scatter(
                [r["q"] for r in sel], [r["d"] for r in sel], c=[r["t"] for r in sel],
                vmin=lo, vmax=hi if hi > lo else lo + 1, cmap="viridis", marker=marker,
                s=size, edgecolors="black", linewidths=0.5 if in_fit else 1.5,
                alpha=1.0 if in_fit else 0.45,
                label=name if in_fit else f"{name}, not in the fit",
            )  # fmt: skip
    label_points(ax, [(r["q"], r["d"], r["short"]) for r in rows])
    if points is not None:
        fig.colorbar(points, ax=ax, label=axis)
    ks = sorted({r.get("k") for r in rows if r.get("k")})
    ax.set_xlabel(f"q: mean proposal score ({axis.split(': ', 1)[-1]})")
    ax.set_ylabel("d: Vendi score of the proposals (embeddings)")
    ax.set_title(
        f"{benchmark}: quality vs diversity of the proposals (k = {', '.join(map(str, ks))})"
    )
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def self_vs_mixed(bars: dict[str, list[dict]], path: Path, axis: str = "t") -> Path:
    """Per benchmark: bars with 95% bootstrap intervals, e.g. best Self-MoA vs best Mixed-MoA."""
    fig, axes = plt.subplots(1, len(bars), figsize=(4.5 * len(bars), 4), squeeze=False)
    for ax, (benchmark, rows) in zip(axes[0], bars.items(), strict=True):
        xs = range(len(rows))
        ax.bar(
            xs,
            [r["t"] for r in rows],
            yerr=[[r["t"] - r["ci"][0] for r in rows], [r["ci"][1] - r["t"] for r in rows]],
            color=[KIND_COLOURS[r["kind"]] for r in rows],
            capsize=6,
        )
        ax.set_xticks(list(xs), [f"{r['role']}\n{r['label']}" for r in rows], fontsize=7)
        ax.set_ylabel(axis if len(bars) == 1 else f"t: {benchmark}")
        ax.set_title(benchmark)
    fig.suptitle("Self-MoA vs Mixed-MoA (95% bootstrap intervals over items)", fontsize=10)
    return _save(fig, path)


def _errors(rows: list[dict]) -> list[list[float]] | None:
    if not all(r.get("ci") and r["ci"][0] == r["ci"][0] for r in rows):
        return None
    return [[r["t"] - r["ci"][0] for r in rows], [r["ci"][1] - r["t"] for r in rows]]


def score_vs_k(
    lines: dict[str, list[dict]], refs: list[dict], benchmark: str, path: Path, axis: str = "t"
) -> Path:
    """t against k and against generated tokens per item, a curve per (method, model) with 95%
    intervals; each model's greedy single answer as a dashed line."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for name, rows in lines.items():
        rows = sorted(rows, key=lambda r: r["k"])
        ts, err = [r["t"] for r in rows], _errors(rows)
        left.errorbar([r["k"] for r in rows], ts, yerr=err, marker="o", capsize=3, label=name)
        right.errorbar([r["tokens"] for r in rows], ts, yerr=err, marker="o", capsize=3, label=name)
    for n, ref in enumerate(refs):
        colour = f"C{(len(lines) + n) % 10}"
        for ax in (left, right):
            ax.axhline(ref["t"], ls="--", lw=1, color=colour,
                       label=f"{ref['label']} ({ref['model']}, greedy)")  # fmt: skip
    ks = sorted({r["k"] for rows in lines.values() for r in rows})
    left.set_xticks(ks)
    left.set_xlabel("k (proposals)")
    right.set_xlabel("generated tokens per item (proposals + aggregation)")
    left.set_ylabel(axis)
    left.legend(fontsize=7, loc="best")
    fig.suptitle(f"{benchmark}: Self-MoA and Self-MoA-Seq against k and compute "
                 "(95% bootstrap intervals over items)", fontsize=10)  # fmt: skip
    return _save(fig, path)


def compute_matched(rows: list[dict], benchmark: str, path: Path, axis: str = "t") -> Path:
    """t against generated tokens and against calls per item; the Pareto front as a step line."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    kinds = [k for k in KIND_COLOURS if any(r["kind"] == k for r in rows)]
    for ax, cost, name in zip(
        axes, ("tokens", "calls"), ("generated tokens per item", "LLM calls per item"), strict=True
    ):
        for r in rows:
            on = r[f"front_{cost}"]
            ax.scatter(r[cost], r["t"], c=KIND_COLOURS[r["kind"]], s=60 if on else 25,
                       edgecolors="black" if on else "none", zorder=3)  # fmt: skip
        label_points(ax, [(r[cost], r["t"], r["label"]) for r in rows if r[f"front_{cost}"]])
        front = sorted((r[cost], r["t"]) for r in rows if r[f"front_{cost}"])
        if front:
            ax.step(
                *zip(*front, strict=True), where="post", color="black", lw=1, label="Pareto front"
            )
        for kind in kinds:
            ax.scatter([], [], c=KIND_COLOURS[kind], label=KIND_NAMES[kind])
        ax.set_xlabel(name)
        ax.legend(fontsize=7, loc="best")
    axes[0].set_ylabel(axis)
    fig.suptitle(f"{benchmark}: score against compute (front: nothing cheaper scores higher; "
                 "labels on the front)", fontsize=10)  # fmt: skip
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
