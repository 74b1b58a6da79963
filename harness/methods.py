"""Ensemble methods as batched stages: `single` and `self_moa`.

A run holds one or more configurations (the method, plus the `single` greedy baseline when
`baseline=true`). They are executed stage by stage, never question by question:

    propose:   per proposer model, ONE engine.chat over every (configuration, item),
               with SamplingParams(n=k, seed=item seed)
    aggregate: per aggregator model, ONE engine.chat over every (self_moa configuration, item):
               the original conversation plus the numbered proposals (harness.prompts)
    score:     extract and score every proposal and every final answer (pure, no model)

One model is resident at a time (`ModelSlot`); load and generation seconds are kept apart.
Every generation goes to the content-addressed store (harness.store) as soon as its stage ends;
a stage first serves what the store already has, so a re-run or a resumed run regenerates
nothing, and a model whose stage is fully stored is not even loaded.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from harness.benchmarks import Benchmark, Item
from harness.config import MethodConfig, ModelConfig, RunConfig
from harness.engine import Completion, Conversation, Engine, Output, Sampling, model_identity
from harness.prompts import aggregation_messages
from harness.store import Store, generation_key

log = logging.getLogger(__name__)

EngineFactory = Callable[[ModelConfig], Engine]


@dataclass(frozen=True)
class Configuration:
    label: str  # unique within a run: "single", "self_moa(k=4)", ...
    method: MethodConfig
    proposer: str  # model name
    aggregator: str | None  # model name; None for methods without aggregation


def configurations(run: RunConfig) -> list[Configuration]:
    m = run.method
    if m.name == "single":
        sampled = "" if m.temperature == 0 else f"(T={m.temperature})"
        main = Configuration(f"single{sampled}", m, run.model.name, None)
    else:
        agg = m.aggregator or run.model.name
        suffix = "" if agg == run.model.name else f",agg={agg}"
        main = Configuration(f"self_moa(k={m.k}{suffix})", m, run.model.name, agg)
    confs = [main]
    if run.baseline and main.label != "single":
        greedy = MethodConfig(name="single", k=1, temperature=0.0, max_tokens=m.max_tokens)
        confs.insert(0, Configuration("single", greedy, run.model.name, None))
    return confs


def item_seed(base_seed: int, item_id: str) -> int:
    """A per-item sampling seed; vLLM uses seed + j for sample j, so items are spaced apart."""
    digest = hashlib.sha256(f"{base_seed}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x3FFFFFFF


@dataclass
class StageStats:
    stage: str
    model: str
    load_s: float = 0.0
    gen_s: float = 0.0
    requests: int = 0
    sequences: int = 0
    found: int = 0  # sequences served from the store
    made: int = 0  # sequences generated now
    prompt_tokens: int = 0  # of generated sequences: n samples of one prompt count n times
    generated_tokens: int = 0  # newly generated in this stage
    skipped: int = 0  # requests not sent (prompt exceeds the context)

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.gen_s if self.gen_s > 0 else 0.0


class ModelSlot:
    """Holds at most one loaded model; asking for another closes the current one first."""

    def __init__(self, models: dict[str, ModelConfig], make_engine: EngineFactory):
        self.models, self.make_engine = models, make_engine
        self.engine: Engine | None = None

    def identity(self, name: str) -> str:
        return model_identity(self.models[name])

    @property
    def resident(self) -> str | None:
        return self.engine.model_name if self.engine else None

    def get(self, name: str) -> tuple[Engine, float]:
        """The engine for `name` and the seconds spent loading it now (0 if already resident)."""
        if self.resident == name:
            return self.engine, 0.0  # type: ignore[return-value]
        self.close()
        self.engine = self.make_engine(self.models[name])
        return self.engine, self.engine.load_s

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


def missing_runs(found: list) -> list[tuple[int, int]]:
    """(first index, length) of each run of consecutive missing (None) samples."""
    runs: list[tuple[int, int]] = []
    for j, got in enumerate(found):
        if got is None:
            if runs and sum(runs[-1]) == j:
                runs[-1] = (runs[-1][0], runs[-1][1] + 1)
            else:
                runs.append((j, 1))
    return runs


def run_stage(
    slot: ModelSlot,
    store: Store,
    stage: str,
    model: str,
    requests: list[tuple[Conversation, Sampling]],
) -> tuple[list[Output], list[int], StageStats]:
    """Serve a stage's requests from the store, generating only what is missing in ONE batch.

    Returns the outputs (in request order), the tokens newly generated per request, and stats.
    A missing run of samples j..j+m-1 is asked for as n=m with seed + j, which vLLM expands to
    exactly the seeds of those samples. The model is loaded only if something is missing.
    """
    identity = slot.identity(model)
    keys = [
        [generation_key(identity, conv, p.generation_fields(), p.seed, j) for j in range(p.n)]
        for conv, p in requests
    ]
    found = [[store.get(k) for k in ks] for ks in keys]
    todo = [
        (i, first, replace(p, n=n, seed=None if p.seed is None else p.seed + first))
        for i, ((_, p), got) in enumerate(zip(requests, found, strict=True))
        for first, n in missing_runs(got)
    ]
    stats = StageStats(stage, model, requests=len(requests))
    stats.sequences = sum(p.n for _, p in requests)
    stats.found = stats.sequences - sum(p.n for _, _, p in todo)
    log.info(
        "stage %s on %s: %d requests, %d sequences, %d found in the store",
        stage,
        model,
        len(requests),
        stats.sequences,
        stats.found,
    )
    made = [0] * len(requests)
    errors: dict[int, Output] = {}
    if todo:
        engine, stats.load_s = slot.get(model)
        start = time.perf_counter()
        outputs = engine.chat([requests[i][0] for i, _, _ in todo], [p for _, _, p in todo])
        stats.gen_s = time.perf_counter() - start
        new = []
        for (i, first, _), out in zip(todo, outputs, strict=True):
            if out.error:
                errors[i] = out
                continue
            for j, c in enumerate(out.completions, start=first):
                found[i][j] = {
                    "key": keys[i][j],
                    "model": identity,
                    "stage": stage,
                    "sample_index": j,
                    "text": c.text,
                    "tokens": c.tokens,
                    "finish_reason": c.finish_reason,
                    "prompt_tokens": out.prompt_tokens,
                }
                new.append(found[i][j])
                made[i] += c.tokens
                stats.made += 1
                stats.prompt_tokens += out.prompt_tokens
        store.put(new)
        stats.generated_tokens = sum(made)
    stats.skipped = len(errors)
    log.info(
        "stage %s on %s: made %d sequences; load %.1f s, generate %.1f s, %.1f tokens/s",
        stage,
        model,
        stats.made,
        stats.load_s,
        stats.gen_s,
        stats.tokens_per_s,
    )
    results = [
        errors.get(i)
        or Output(
            got[0]["prompt_tokens"],
            tuple(Completion(g["text"], g["tokens"], g["finish_reason"]) for g in got),
        )
        for i, got in enumerate(found)
    ]
    return results, made, stats


def execute(
    confs: list[Configuration],
    items: list[Item],
    bench: Benchmark,
    slot: ModelSlot,
    store: Store,
    seed: int,
) -> tuple[list[dict], list[StageStats]]:
    """Run every configuration on every item: (a record per configuration and item, stages)."""
    stages: list[StageStats] = []
    proposals: dict[tuple[str, str], Output] = {}
    aggregations: dict[tuple[str, str], Output] = {}
    share: dict[str, float] = {c.label: 0.0 for c in confs}  # attributed generation seconds

    def run_grouped(stage: str, by_model: dict[str, list[Configuration]], build, sink) -> None:
        # the resident model goes first so it is not reloaded
        for model in sorted(by_model, key=lambda name: name != slot.resident):
            keys, requests = [], []
            for conf in by_model[model]:
                for item in items:
                    if (req := build(conf, item)) is not None:
                        keys.append((conf.label, item.id))
                        requests.append(req)
            if not requests:
                continue
            outputs, made, stats = run_stage(slot, store, stage, model, requests)
            stages.append(stats)
            for key, out, tokens in zip(keys, outputs, made, strict=True):
                sink[key] = out
                if stats.generated_tokens:
                    share[key[0]] += stats.gen_s * tokens / stats.generated_tokens

    def propose(conf: Configuration, item: Item):
        m = conf.method
        return bench.messages(item), Sampling(
            n=m.k,
            temperature=m.temperature,
            top_p=m.top_p,
            max_tokens=m.max_tokens,
            seed=item_seed(seed, item.id),
        )

    def aggregate(conf: Configuration, item: Item):
        out = proposals[(conf.label, item.id)]
        if out.error or not out.completions:
            return None
        m = conf.method
        conversation = aggregation_messages(bench.messages(item), [c.text for c in out.completions])
        return conversation, Sampling(
            n=1,
            temperature=m.aggregator_temperature,
            max_tokens=m.aggregator_max_tokens,
            seed=item_seed(seed + 1, item.id),
        )

    run_grouped("propose", group(confs, lambda c: c.proposer), propose, proposals)
    aggregated = [c for c in confs if c.aggregator is not None]
    run_grouped("aggregate", group(aggregated, lambda c: c.aggregator), aggregate, aggregations)

    records = [
        make_record(
            conf,
            item,
            bench,
            proposals[(conf.label, item.id)],
            aggregations.get((conf.label, item.id)),
        )
        for conf in confs
        for item in items
    ]
    for r in records:  # a stage's seconds, split by each configuration's share of its tokens
        r["gen_s"] = share[r["configuration"]] / len(items)
    return records, stages


def group(confs: list[Configuration], key) -> dict[str, list[Configuration]]:
    grouped: dict[str, list[Configuration]] = {}
    for conf in confs:
        grouped.setdefault(key(conf), []).append(conf)
    return grouped


def make_record(
    conf: Configuration, item: Item, bench: Benchmark, proposed: Output, aggregated: Output | None
) -> dict:
    """One item of one configuration: every proposal, the aggregation, the final answer, scores."""
    proposals = []
    for j, c in enumerate(proposed.completions):
        answer = bench.extract_answer(c.text)
        proposals.append(
            {
                "model": conf.proposer,
                "sample_index": j,
                "text": c.text,
                "prompt_tokens": proposed.prompt_tokens,
                "generated_tokens": c.tokens,
                "finish_reason": c.finish_reason,
                "answer": answer,
                "score": bench.score(item, answer),
            }
        )
    aggregation = None
    error = proposed.error
    if conf.aggregator is None:
        final = proposed.completions[0] if proposed.completions else None
    else:
        final = None
        if aggregated is not None:
            error = aggregated.error
            if aggregated.completions:
                final = aggregated.completions[0]
                aggregation = {
                    "model": conf.aggregator,
                    "text": final.text,
                    "prompt_tokens": aggregated.prompt_tokens,
                    "generated_tokens": final.tokens,
                    "finish_reason": final.finish_reason,
                }
    answer = bench.extract_answer(final.text) if final else None
    if error:
        outcome = error.split(":", 1)[0]
    elif final is None:
        outcome = "no_output"
    elif answer is None:
        outcome = "no_answer"
    else:
        outcome = "ok"
    calls = len(proposed.completions) + (1 if aggregation else 0)
    tokens = [p["generated_tokens"] for p in proposals] + (
        [aggregation["generated_tokens"]] if aggregation else []
    )
    prompt = proposed.prompt_tokens * len(proposed.completions) + (
        aggregation["prompt_tokens"] if aggregation else 0
    )
    return {
        "configuration": conf.label,
        "method": conf.method.name,
        "item_id": item.id,
        "question": item.question,
        "reference": item.reference,
        "proposals": proposals,
        "aggregation": aggregation,
        "final_text": final.text if final else None,
        "answer": answer,
        "score": bench.score(item, answer),
        "outcome": outcome,
        "error": error,
        "calls": calls,
        "prompt_tokens": prompt,
        "generated_tokens": sum(tokens),
    }
