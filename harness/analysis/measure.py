"""Loading run directories and measuring each configuration, per item.

A `Point` is one configuration of one benchmark as the analysis sees it (a point of the
q-d plane; `harness.plan`'s configuration is the recipe that produced it). Its measures are
computed per record (an item, or an item's turn) from `harness.records.Record`, averaged over
the turns of an item. Scores that are missing (a judge reply that could not be read) are left
out and counted: an item whose final answer has no score has t = NaN and counts as unscored.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from harness.analysis.diversity import Embedder, distinct_answers, ngram_gram, vendi_of_gram
from harness.analysis.diversity import vendi_of as vendi
from harness.analysis.quality import K_NORMS, measure_name, model_measures, power_mean
from harness.benchmarks.base import TURN_SUFFIX
from harness.records import Record

log = logging.getLogger(__name__)

ITEM_QUALITY = tuple(measure_name("q", k) for k in K_NORMS)  # q, q2, q3, q4
MEASURES = ("t", *ITEM_QUALITY, "d", "d_ngram", "answers", "tokens", "calls")


class AnalysisError(ValueError):
    """The directory cannot be analysed (and says why)."""


@dataclass
class Run:
    path: Path
    benchmark: str
    metric: str  # headline metric name: acc, win_rate or score
    overrides: str  # Hydra overrides of the run, to tell apart same-named configurations
    logger: dict
    config: dict
    records: list[Record]


@dataclass
class Point:
    """One configuration of one benchmark, measured per item."""

    label: str
    benchmark: str
    method: str
    run: str
    kind: str  # "self" (one proposer model), "mixed" (several) or "none" (no proposals)
    models: list[str]
    k: int  # proposals per record (the most common count)
    mix: dict[str, int] = field(default_factory=dict)  # proposer model -> multiplicity
    # the proposer models of a record in prompt order, as the run's letters (e.g. "qqqsss"),
    # when every one has a letter; "" otherwise
    mixture: str = ""
    per_item: dict[str, dict[str, float]] = field(default_factory=dict)  # item -> measure
    per_item_model: dict[str, dict[str, float]] = field(default_factory=dict)  # item -> model
    unscored_proposals: int = 0  # proposals without a score, left out of q
    # its structure, read off the records (the most common per record): the model that gave
    # the final answer, rounds after the proposals, their modes, whether the final round picks
    # a proposal (a selection) rather than writing an answer
    aggregator: str | None = None
    rounds: int = 0
    modes: tuple[str, ...] = ()
    selects: bool = False

    def mean(self, measure: str, items: list[str] | None = None) -> float:
        """Mean over `items` (default all) of a per-item measure, NaN items left out."""
        values = [self.per_item[i][measure] for i in (self.per_item if items is None else items)]
        values = [v for v in values if v == v]
        return float(np.mean(values)) if values else float("nan")

    def scored_items(self) -> list[str]:
        return [i for i, v in self.per_item.items() if v["t"] == v["t"]]

    @property
    def unscored(self) -> int:
        return len(self.per_item) - len(self.scored_items())

    def model_quality(self, items: list[str] | None = None) -> dict[str, float]:
        """Each proposer model's mean proposal score over `items` (default all)."""
        out = {}
        for m in self.mix:
            chosen = self.per_item_model if items is None else items
            values = [self.per_item_model[i].get(m) for i in chosen]
            values = [v for v in values if v is not None and v == v]
            out[m] = float(np.mean(values)) if values else float("nan")
        return out

    def quality(self, items: list[str] | None = None) -> dict[str, float]:
        """Every quality measure (harness.analysis.quality) over `items` (default all)."""
        out = {q: self.mean(q, items) for q in ITEM_QUALITY}
        out.update(model_measures(self.model_quality(items), self.mix))
        return out


def find_runs(path: Path) -> list[Path]:
    """`path` itself when it is a run directory, else every run directory below it."""
    if not path.is_dir():
        raise AnalysisError(
            f"{path}: {'no such directory' if not path.exists() else 'not a directory'}"
        )
    if (path / "records.jsonl").exists():
        return [path]
    found = sorted(p.parent for p in path.rglob("records.jsonl") if "wandb" not in p.parts)
    if not found:
        raise AnalysisError(
            f"no records.jsonl in or below {path}: give a run directory (python -m harness.run "
            "writes one) or a multirun sweep directory holding run directories"
        )
    return found


def read_records(path: Path) -> list[Record]:
    """The records of `path`/records.jsonl; bad lines (torn, not UTF-8, not a JSON object,
    without the fields of harness.records.Record) are skipped, counted and logged as file:line.
    No readable record at all is an AnalysisError saying why.

    Read line by line (a paper-size study's file is over a gigabyte), each distinct question and
    proposal text held once: the configurations of an item share their proposals.
    """
    records: list[Record] = []
    bad: list[str] = []  # "file:line: reason"
    shared: dict[str, str] = {}
    file = path / "records.jsonl"
    with file.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw.decode("utf-8"))
                _share_texts(data, shared)
                records.append(Record.from_json(data))
            except UnicodeDecodeError:
                bad.append(f"{file}:{number}: not UTF-8")
            except json.JSONDecodeError:
                bad.append(f"{file}:{number}: not JSON (torn or corrupted)")
            except (TypeError, KeyError, ValueError, AttributeError) as e:
                bad.append(f"{file}:{number}: not a record ({str(e)[:120]})")
    if bad:
        log.warning("%d bad lines of records.jsonl skipped: %s", len(bad), "; ".join(bad[:5]))
    if not records:
        why = f"{len(bad)} bad lines, the first {bad[0]}" if bad else "the file is empty"
        raise AnalysisError(f"{file}: no readable record ({why})")
    return records


def _share_texts(data, shared: dict[str, str]) -> None:
    """Replace a record's question and proposal texts by the first equal string seen."""
    if not isinstance(data, dict):
        raise TypeError("a record is a JSON object")
    if isinstance(data.get("question"), str):
        data["question"] = shared.setdefault(data["question"], data["question"])
    for p in data.get("proposals") or ():
        if isinstance(p, dict) and isinstance(p.get("text"), str):
            p["text"] = shared.setdefault(p["text"], p["text"])


def load_run(path: Path) -> Run:
    if not path.is_dir():
        raise AnalysisError(
            f"{path}: {'no such run directory' if not path.exists() else 'not a directory'}"
        )

    def read(name: str, parse) -> dict:
        return (parse((path / name).read_text()) or {}) if (path / name).exists() else {}

    config = read("config.yaml", yaml.safe_load)
    metrics = read("metrics.json", json.loads)
    benchmark = metrics.get("benchmark") or (config.get("benchmark") or {}).get("name")
    if not benchmark:
        raise AnalysisError(f"{path}: neither metrics.json nor config.yaml names the benchmark")
    overrides_file = path / ".hydra" / "overrides.yaml"
    overrides = (
        " ".join(yaml.safe_load(overrides_file.read_text()) or [])
        if overrides_file.exists()
        else path.name
    )
    return Run(
        path=path,
        benchmark=benchmark,
        metric=metrics.get("metric", "acc").split("/")[-1],  # metrics.json: "<bench>/<metric>"
        overrides=overrides or path.name,
        logger=config.get("logger") or {},
        config=config,
        records=read_records(path),
    )


def score_scale(records: list[Record]) -> float:
    """100 (percent) when every score lies in [0, 1], else 1 (a rating scale)."""
    scores = [r.score for r in records] + [p.score for r in records for p in r.proposals]
    return 100.0 if all(0 <= s <= 1 for s in scores if s is not None) else 1.0


def ngram_diversity(runs: list[Run]) -> dict[tuple[str, ...], float]:
    """d_ngram of each distinct set of proposals, item by item: one n-gram Gram matrix over the
    item's distinct proposal texts (its configurations share them), each set's kernel a block."""
    by_item: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for run in runs:
        for r in run.records:
            by_item[(run.benchmark, str(r.item_id))].append(r)
    out: dict[tuple[str, ...], float] = {}
    for rs in by_item.values():
        sets = {tuple(p.text for p in r.proposals) for r in rs} - {()}
        texts = list(dict.fromkeys(t for s in sets for t in s))
        if not texts:
            continue
        index = {t: i for i, t in enumerate(texts)}
        gram = ngram_gram(texts)
        for s in sets:
            pick = [index[t] for t in s]
            out[s] = vendi_of_gram(gram[np.ix_(pick, pick)])
    return out


def record_measures(
    r: Record, embeddings: dict[str, np.ndarray], ngram: dict[tuple[str, ...], float],
    scale: float,
) -> tuple[dict[str, float], dict[str, float]]:  # fmt: skip
    """Every measure of one record, and each proposer model's mean score on it.

    NaN where it has no proposals, no scored proposal or no extractable answer.
    """
    nan = float("nan")
    ps = r.proposals
    # a judge reply that could not be read scores None: left out, like metrics.summarize does
    scores = [float(p.score) for p in ps if p.score is not None]
    texts = [p.text for p in ps]
    answers = distinct_answers([p.answer for p in ps]) if ps else None
    out = {
        "t": nan if r.score is None else scale * float(r.score),
        "d": vendi(np.stack([embeddings[x] for x in texts])) if ps else nan,
        "d_ngram": ngram[tuple(texts)] if ps else nan,
        "answers": nan if answers is None else float(answers),
        "tokens": float(r.generated_tokens),
        "calls": float(r.calls),
    }
    for k in K_NORMS:
        out[measure_name("q", k)] = scale * power_mean(scores, k) if scores else nan
    by_model: dict[str, list[float]] = defaultdict(list)
    for p in ps:
        if p.score is not None:
            by_model[p.model].append(scale * float(p.score))
    return out, {m: float(np.mean(v)) for m, v in by_model.items()}


def _nanmean(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return float(np.mean(values)) if values else float("nan")


def points(runs: list[Run], embedder: Embedder) -> list[Point]:
    """One Point per (benchmark, label), with per-item measures.

    The same label in two runs of one benchmark is kept once when its records are identical,
    else suffixed with the run's Hydra overrides.
    """
    embeddings = embedder.embed([p.text for run in runs for r in run.records for p in r.proposals])
    ngram = ngram_diversity(runs)
    found: dict[tuple[str, str], Point] = {}
    signatures: dict[tuple[str, str], list] = {}
    for run in runs:
        scale = score_scale(run.records)
        by_label: dict[str, list[Record]] = defaultdict(list)
        for r in run.records:
            by_label[r.configuration].append(r)
        for label, rs in by_label.items():
            signature = sorted(
                (str(r.item_id), str(r.turn), r.final_text or "")
                + tuple(p.text for p in r.proposals)
                for r in rs
            )
            key = (run.benchmark, label)
            if key in signatures:
                if signatures[key] == signature:
                    log.info(
                        "%s in %s repeats an identical configuration: kept once", label, run.path
                    )
                    continue
                label = f"{label} [{run.overrides}]"
                key = (run.benchmark, label)
            signatures[key] = signature
            found[key] = measure(label, run, rs, embeddings, ngram, scale)
    return list(found.values())


def _most_common(values):
    return Counter(values).most_common(1)[0][0]


def _final_model(r: Record) -> str | None:
    final = r.aggregation or (r.rounds[-1] if r.rounds else None)
    return final.model if final else None


def _selects(r: Record) -> bool:
    return r.aggregation is not None and r.aggregation.selection is not None


def measure(
    label: str, run: Run, rs: list[Record], embeddings: dict[str, np.ndarray],
    ngram: dict[tuple[str, ...], float], scale: float,
) -> Point:  # fmt: skip
    mixes = Counter(tuple(sorted(Counter(p.model for p in r.proposals).items())) for r in rs)
    mix = dict(mixes.most_common(1)[0][0])
    orders = Counter(tuple(p.model for p in r.proposals) for r in rs)
    letter = {name: c for c, name in (run.config.get("letters") or {}).items()}
    order = orders.most_common(1)[0][0]
    point = Point(
        label=label,
        benchmark=run.benchmark,
        method=rs[0].method,
        run=str(run.path),
        kind={0: "none", 1: "self"}.get(len(mix), "mixed"),
        models=sorted(mix),
        k=Counter(len(r.proposals) for r in rs).most_common(1)[0][0],
        mix=mix,
        mixture="".join(letter[m] for m in order) if all(m in letter for m in order) else "",
        unscored_proposals=sum(p.score is None for r in rs for p in r.proposals),
        aggregator=_most_common(_final_model(r) for r in rs),
        rounds=_most_common(len(r.rounds) for r in rs),
        modes=tuple(sorted({g.mode for r in rs for g in r.rounds})),
        selects=bool(_most_common(_selects(r) for r in rs)),
    )
    per_item: dict[str, list[tuple[dict, dict]]] = defaultdict(list)
    for r in rs:  # the turns of a multi-turn item count as one item
        item = str(r.item_id).removesuffix(TURN_SUFFIX.format(r.turn))
        per_item[item].append(record_measures(r, embeddings, ngram, scale))
    for item, pairs in per_item.items():
        point.per_item[item] = {m: _nanmean([v[m] for v, _ in pairs]) for m in MEASURES}
        models = {m for _, by_model in pairs for m in by_model}
        point.per_item_model[item] = {
            m: _nanmean([b[m] for _, b in pairs if m in b]) for m in models
        }
    return point


def common_items(chosen: list[Point]) -> list[str]:
    """The items every point has; a warning when some point has more."""
    items = set.intersection(*(set(p.per_item) for p in chosen))
    if any(len(p.per_item) != len(items) for p in chosen):
        log.warning("configurations cover different items: using the %d items all have", len(items))
    return sorted(items)


def item_array(chosen: list[Point], items: list[str], measures: tuple[str, ...]) -> np.ndarray:
    """(points, items, measures) array of per-item values (NaN where unscored)."""
    return np.array([[[p.per_item[i][m] for m in measures] for i in items] for p in chosen])


def short_label(p: Point) -> str:
    """A mixture's letters (from its proposals, not its label); any other point's label."""
    return p.mixture if p.kind == "mixed" and p.mixture else p.label
