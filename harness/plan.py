"""Planning a study: its configurations, what each needs of each model, and the seeds.

A configuration is one method with its knobs, resolved against the run: which models propose
(and how many samples of each), which model aggregates, and a unique label. A study runs its
configurations on every item; with `baseline=true` the greedy `single` answer of every proposer
model comes first, as the reference line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from harness import benchmarks, methods
from harness.benchmarks import Benchmark, Item, validate_judge
from harness.config import RunConfig, to_run_config
from harness.errors import ConfigError
from harness.methods import Method, item_seed

__all__ = [
    "Configuration",
    "checked_run",
    "configurations",
    "item_seed",
    "load_items",
    "plan_line",
    "planned_generations",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Configuration:
    label: str  # unique within a run: "single", "self_moa(k=4)", "mixed_moa(qqqsss)", ...
    method: Method
    proposers: tuple[tuple[str, int], ...]  # (model name, samples) in prompt order
    aggregator: str | None  # model name; None for methods without an LLM aggregation

    @property
    def knobs(self):
        return self.method.knobs

    @property
    def reference(self) -> bool:
        """The reference line (the greedy baseline's method), marked as such in tables."""
        return self.method.reference

    @property
    def stream(self) -> tuple[float, float, int]:
        """(temperature, top_p, max_tokens) of its proposals: configurations sharing a model
        and these share its samples (the proposal pool's key, with the model and prompt)."""
        k = self.knobs
        return (k.temperature, k.top_p, k.max_tokens)


def configuration(knobs: methods.Knobs, run: RunConfig, key: str = "method") -> Configuration:
    method = methods.make(knobs, key, run.letters)
    model = knobs.model or run.model.name
    short = {name: letter for letter, name in run.letters.items()}
    proposers = method.proposers(model, run.letters)
    aggregator = method.aggregator(model)
    if knobs.label:
        return Configuration(knobs.label, method, proposers, aggregator)
    spec = getattr(knobs, "mixture", None) or (
        "" if model == run.model.name else short.get(model, model)
    )
    agg = short.get(aggregator, aggregator) if aggregator and aggregator != model else None
    parts = ([spec] if spec else []) + method.label_parts(agg)
    label = f"{knobs.name}({','.join(parts)})" if parts else knobs.name
    return Configuration(label, method, proposers, aggregator)


def configurations(run: RunConfig) -> list[Configuration]:
    """The run's configurations: `configurations` (a study) or `method`, after the baselines."""
    rows = [(k, f"configurations[{i}]") for i, k in enumerate(run.configurations)]
    confs = [configuration(k, run, key) for k, key in rows or [(run.method, "method")]]
    if run.baseline:
        models = dict.fromkeys(name for c in confs for name, _ in c.proposers)
        max_tokens = confs[0].knobs.max_tokens
        greedy = [configuration(methods.reference_knobs(name, max_tokens), run) for name in models]
        confs = [g for g in greedy if g.label not in {c.label for c in confs}] + confs
    labels = [c.label for c in confs]
    if len(set(labels)) != len(labels):
        dup = next(x for x in labels if labels.count(x) > 1)
        raise ConfigError(f"two configurations are both labelled {dup!r}; give one a `label`")
    return confs


def checked_run(cfg, run_dir: str | None = None) -> RunConfig:
    """The typed run of a composed config, with every check that needs no model: knobs, model
    names, labels, the judge."""
    run = to_run_config(cfg, run_dir)
    configurations(run)
    rows = [methods.method_class(m.name) for m in run.configurations or [run.method]]
    validate_judge(run.benchmark, [cls.name for cls in rows if cls.needs_answer])
    return run


def planned_generations(confs: list[Configuration], items: int, turns: int = 1) -> dict[str, int]:
    """Upper bounds of what a study asks for before the store serves any of it: generations
    per stage kind, and tokens (every generation at its cap).

    Proposals count once per (model, sampling) stream, as the pool shares them; every method
    says what it generates after them (`Method.planned_rounds`).
    """
    streams: dict[tuple, int] = {}
    rounds: list[int] = []
    for c in confs:
        for model, n in c.proposers:
            key = (model, *c.stream)
            streams[key] = max(streams.get(key, 0), n)
        rounds += c.method.planned_rounds()
    tokens = sum(rounds)
    tokens += sum(n * key[3] for key, n in streams.items())
    scale = items * turns
    return {
        "proposals": sum(streams.values()) * scale,
        "aggregations": len(rounds) * scale,
        "tokens": tokens * scale,
    }


def load_items(run: RunConfig, check: bool = True) -> tuple[Benchmark, list[Item]]:
    """The run's benchmark and its items; with `check`, none is a ConfigError and the
    benchmark's own start-up check runs (e.g. CRUXEval's sandbox)."""
    bench = benchmarks.get(run.benchmark)
    items = bench.load()
    if not check:
        return bench, items
    log.info(
        "%s: %d items from %s (%d malformed skipped)",
        bench.name,
        len(items),
        bench.report.source,
        len(bench.report.skipped),
    )
    if not items:
        raise ConfigError(
            f"benchmark {bench.name} has no items (benchmark.limit={run.benchmark.limit})"
        )
    bench.check()
    return bench, items


def plan_line(run: RunConfig, confs: list[Configuration], items: int, turns: int = 1) -> str:
    """The study's planned generations and tokens, and their time at the engine's hint."""
    planned = planned_generations(confs, items, turns)
    line = (
        f"planned: {len(confs)} configurations on {items} items: at most "
        f"{planned['proposals']} proposals and {planned['aggregations']} aggregations, "
        f"{planned['tokens']} tokens (before the store serves what it has)"
    )
    if run.engine.tokens_per_s_hint > 0:
        minutes = planned["tokens"] / run.engine.tokens_per_s_hint / 60
        line += f"; at most ~{minutes:.0f} min at {run.engine.tokens_per_s_hint:g} tokens/s"
    return line
