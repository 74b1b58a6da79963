"""Generation: store-served, batched stages, one resident model at a time.

A stage is one model asked a list of requests (conversation, sampling with n samples and a base
seed). `Generator.stage` first serves every sample the store already has, then generates only
the missing ones, in ONE engine call, stores them as soon as the call returns (an engine with
`streams = True`, the served one, hands each output over as it arrives, and it is stored then),
and accounts for the stage (`StageStats`, outcomes without a generation counted by name). A
missing run of samples j..j+m-1 is asked for as n=m with seed + j, which the engine expands to
exactly the seeds of those samples. A model is loaded only if
something is missing, and while generating a stage holds the store's lock of each stream it
writes (model and sampling fields), so concurrent jobs sharing the store never make the same
generation twice.

`propose` runs the proposal stages of a list of jobs: per model and sampling, the most samples
any configuration needs of one conversation, shared by every configuration that asks it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from harness.config import EngineConfig, ModelConfig
from harness.engines import Completion, Conversation, Engine, Output, Sampling
from harness.engines.factory import make_engine
from harness.engines.factory import model_identity as engine_identity
from harness.methods import Job, item_seed
from harness.progress import next_stage, stage_done
from harness.records import Generation
from harness.store import Store, generation_key
from harness.summary import StageStats

log = logging.getLogger(__name__)

FAULT_ENV = "HARNESS_FAULT_AT"  # tests only: tests/test_faults.py


def fault_point(name: str) -> None:
    """Kill this process (SIGKILL) at point `name` if $HARNESS_FAULT_AT names it (fault tests).

    Points: `load` (a model is about to load), `stored:<stage>` (a stage's generations just stored,
    e.g. stored:propose, stored:aggregate-2), `score` (every generation done, nothing scored),
    `write` (records.jsonl written, metrics.json not).
    """
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


# pool[(model, (temperature, top_p, max_tokens), conversation key)] = (output, s per token)
Pool = dict[tuple, tuple[Output, float]]


class ModelSlot:
    """Holds at most one loaded model; asking for another closes the current one first."""

    def __init__(
        self,
        models: dict[str, ModelConfig],
        engine: EngineConfig,
        seed: int = 0,
        factory: Callable[[ModelConfig], Engine] | None = None,
    ):
        self.models, self.engine_cfg = models, engine
        self.planned_tokens: int | None = None  # of the load asked for now (enforce_eager: auto)
        self.factory = factory or (
            lambda model: make_engine(model, engine, seed, self.planned_tokens)
        )
        self.engine: Engine | None = None

    def identity(self, name: str) -> str:
        return engine_identity(self.models[name], self.engine_cfg)

    @property
    def resident(self) -> str | None:
        return self.engine.model_name if self.engine else None

    def get(self, name: str, planned_tokens: int | None = None) -> tuple[Engine, float]:
        """The engine for `name` and the seconds spent loading it now (0 if already resident).

        `planned_tokens`: the decode tokens it is loaded for (at most), which decide
        `enforce_eager: auto` (harness.engines.factory.make_engine)."""
        if self.resident == name:
            return self.engine, 0.0  # type: ignore[return-value]
        self.close()
        fault_point("load")
        self.planned_tokens = planned_tokens
        self.engine = self.factory(self.models[name])
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


def stream_lock(kind: str, identity: str, sampling: Sampling, prompts: tuple[str, ...] = ()) -> str:
    """Name of the store lock of a stream: one model at one set of sampling fields, and for a
    stage after the proposals also the prompts it lacks (`prompts`: their conversation keys).
    Proposals are the pool every configuration and sweep point shares, so a job waits for
    another generating the same model's samples; aggregation and judging prompts belong to
    their configuration, so jobs generating different ones never wait on each other."""
    payload = json.dumps([identity, sampling.generation_fields(), sorted(prompts)], sort_keys=True)
    return f"{kind}-" + hashlib.sha256(payload.encode()).hexdigest()[:16]


def stage_locks(
    kind: str, identity: str, requests: list[tuple[Conversation, Sampling]], found: list
) -> list[str]:
    """The stream locks of a stage's missing generations (`stream_lock`)."""
    if kind == "propose":
        return sorted({stream_lock(kind, identity, p) for _, p in requests})
    lacking: dict[tuple, set[str]] = {}
    for (conv, p), got in zip(requests, found, strict=True):
        if any(g is None for g in got):
            fields = tuple(sorted(p.generation_fields().items()))
            lacking.setdefault(fields, set()).add(conversation_key(conv))
    by_fields = {tuple(sorted(p.generation_fields().items())): p for _, p in requests}
    return sorted(stream_lock(kind, identity, by_fields[f], tuple(k)) for f, k in lacking.items())


def conversation_key(conversation: Conversation) -> str:
    return hashlib.sha256(json.dumps(conversation, sort_keys=True).encode()).hexdigest()


@dataclass
class Generator:
    """What every stage needs: the model slot, the store, the run's seed, and its stage log."""

    slot: ModelSlot
    store: Store
    seed: int
    stages: list[StageStats] = field(default_factory=list)

    def stage(
        self, stage: str, model: str, requests: list[tuple[Conversation, Sampling]]
    ) -> list[tuple[Output, float]]:
        """Every request's output (in order) and the generation seconds per token charged to it.

        A generation used by several configurations is charged to each of them at the stage's
        measured rate: the figure is what a configuration would cost alone (0 from the store).
        """
        identity = self.slot.identity(model)
        keys = [
            [generation_key(identity, conv, p.generation_fields(), p.seed, j) for j in range(p.n)]
            for conv, p in requests
        ]
        found = self._lookup(keys)
        stats = StageStats(stage, model, requests=len(requests))
        stats.sequences = sum(p.n for _, p in requests)
        next_stage(f"{stage} on {model}")  # counted even when the store serves all of it
        started, made_budget = time.perf_counter(), 0
        made, errors, folded = [0] * len(requests), {}, set()
        if any(g is None for got in found for g in got):
            locks = stage_locks(stage.split("-")[0], identity, requests, found)
            with self.store.claim(locks):  # refreshes: another job may have made them
                found = self._lookup(keys)
                made_budget = sum(
                    sum(g is None for g in got) * p.max_tokens
                    for got, (_, p) in zip(found, requests, strict=True)
                )
                made, errors, folded = self._generate(stats, identity, requests, keys, found)
        stats.found = stats.sequences - stats.made - sum(requests[i][1].n for i in errors)
        stats.skipped = sum(out.too_long for out in errors.values())
        for out in errors.values():  # each outcome under its own name
            outcome = (out.error or "").split(":", 1)[0]
            stats.failed[outcome] = stats.failed.get(outcome, 0) + 1
        stats.truncated = sum(g.finish_reason == "length" for got in found for g in got if g)
        log.info(
            "stage %s on %s: %d requests, %d sequences, %d from the store, %d made; "
            "load %.1f s, generate %.1f s, %.1f tokens/s",
            stage, model, len(requests), stats.sequences, stats.found, stats.made,
            stats.load_s, stats.gen_s, stats.tokens_per_s,
        )  # fmt: skip
        self.stages.append(stats)
        budget = sum(p.n * p.max_tokens for _, p in requests)
        stage_done(budget, made_budget, time.perf_counter() - started)
        outputs = [
            errors.get(i)
            or Output(
                got[0].prompt_tokens,
                tuple(Completion(g.text, g.tokens, g.finish_reason) for g in got),
                folded=i in folded,
            )
            for i, got in enumerate(found)
        ]
        return [
            (out, charged(stats, out, tokens)) for out, tokens in zip(outputs, made, strict=True)
        ]

    def _lookup(self, keys: list[list[str]]) -> list[list[Generation | None]]:
        return [[self.store.get(k) for k in ks] for ks in keys]

    def _generate(
        self,
        stats: StageStats,
        identity: str,
        requests: list[tuple[Conversation, Sampling]],
        keys: list[list[str]],
        found: list[list[Generation | None]],
    ) -> tuple[list[int], dict[int, Output], set[int]]:
        """Generate the missing samples of `found` in one engine call, store them, fill them in.

        Returns the tokens made per request, the outputs of requests that could not be sent,
        and the requests sent with their system text folded into the first user turn.
        """
        made, errors, folded = [0] * len(requests), {}, set()
        todo = [
            (i, first, replace(p, n=n, seed=None if p.seed is None else p.seed + first))
            for i, ((_, p), got) in enumerate(zip(requests, found, strict=True))
            for first, n in missing_runs(got)
        ]
        if not todo:
            return made, errors, folded
        planned = sum(p.n * p.max_tokens for _, _, p in todo)  # at most, every sample at its cap
        engine, stats.load_s = self.slot.get(stats.model, planned)
        start = time.perf_counter()
        taken: set[int] = set()

        def take(t: int, out: Output) -> list[Generation]:
            """The new generations of todo[t]'s output, filled in and counted."""
            i, first, _ = todo[t]
            taken.add(t)
            if out.folded:
                folded.add(i)
            if out.error:
                errors[i] = out
                return []
            new = []
            for j, c in enumerate(out.completions, start=first):
                g = Generation(
                    keys[i][j], identity, stats.stage, j, c.text, c.tokens, c.finish_reason,
                    out.prompt_tokens,
                )  # fmt: skip
                found[i][j] = g
                new.append(g)
                made[i] += c.tokens
                stats.made += 1
                stats.prompt_tokens += out.prompt_tokens
            return new

        conversations, params = [requests[i][0] for i, _, _ in todo], [p for _, _, p in todo]
        if getattr(engine, "streams", False):  # each output stored as it arrives
            arrived = lambda t, out: self.store.put(take(t, out))  # noqa: E731
            outputs = engine.chat(conversations, params, on_output=arrived)
        else:
            outputs = engine.chat(conversations, params)
        stats.gen_s = time.perf_counter() - start
        self.store.put([g for t, out in enumerate(outputs) if t not in taken for g in take(t, out)])
        fault_point(f"stored:{stats.stage}")
        stats.generated_tokens = sum(made)
        stats.folded = len(folded)
        return made, errors, folded

    def propose(self, jobs: list[Job], models: set[str] | None = None) -> Pool:
        """The proposal stages of `jobs` (only of `models` when given): one stage per model."""
        streams: dict[str, dict[tuple, dict[str, tuple[Job, int]]]] = {}
        for job in jobs:
            if job.error:
                continue
            fields = job.conf.stream
            for model, count in job.conf.proposers:
                convs = streams.setdefault(model, {}).setdefault(fields, {})
                key = conversation_key(job.conversation)
                convs[key] = (job, max(count, convs.get(key, (job, 0))[1]))
        pool: Pool = {}
        aggregators = {job.conf.aggregator for job in jobs}
        # the resident model first, aggregator models last: each is then loaded once if it can be
        for model in sorted(streams, key=lambda n: (n != self.slot.resident, n in aggregators)):
            if models is not None and model not in models:
                continue
            keys, requests = [], []
            for fields, convs in streams[model].items():
                for key, (job, n) in convs.items():
                    keys.append((model, fields, key))
                    seed = item_seed(self.seed, job.item.id)
                    requests.append((job.conversation, Sampling(n, *fields, seed=seed)))
            pool.update(zip(keys, self.stage("propose", model, requests), strict=True))
        return pool


def charged(stats: StageStats, out: Output, made_tokens: int) -> float:
    """Seconds per token of this output that this run spent generating (0 if from the store)."""
    total = sum(c.tokens for c in out.completions)
    if not stats.generated_tokens or not total:
        return 0.0
    return stats.gen_s / stats.generated_tokens * made_tokens / total
