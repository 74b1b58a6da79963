"""A study, stage by stage: proposals, aggregation rounds, later turns, scoring.

propose: per model, ONE batched stage over every item (harness.generate), n = the most
         samples any configuration needs; sample j of model M on item i is shared by every
         configuration that uses it
rounds:  per aggregator model, ONE batched stage per round over every (configuration,
         item) still aggregating (MoA layers and Self-MoA-Seq windows are rounds); each
         configuration's method says what its jobs need (harness.methods)
turns:   turn t > 1 of a multi-turn benchmark continues, per configuration, the dialogue of
         its own final answer to turn t - 1
score:   extract and score, or judge in one batched stage (harness.score)
"""

from __future__ import annotations

import logging

from harness.benchmarks import Benchmark, Item
from harness.config import RunConfig
from harness.engines import SYSTEM_FOLDED
from harness.generate import Generator, ModelSlot, Pool, conversation_key, fault_point
from harness.methods import Job, Request, Step
from harness.plan import Configuration
from harness.records import Proposal, Record, Round
from harness.score import grader, judged_grader, make_record
from harness.store import Store
from harness.summary import StageStats

log = logging.getLogger(__name__)


def execute(
    confs: list[Configuration],
    items: list[Item],
    bench: Benchmark,
    gen: Generator,
    judge: str | None = None,
) -> list[Record]:
    """Run every configuration on every item: a record per configuration, item and turn."""
    jobs = answer([Job(c, i, bench.messages(i), gen.seed) for c in confs for i in items], gen)
    done = list(jobs)
    for turn in range(2, bench.turns + 1):
        later = []
        for job in jobs:
            item = bench.followup(job.item, turn)
            text = job.method.final_text(job, bench.extract_answer)
            if text is None:
                error = f"no_turn_{turn - 1}_answer"
                later.append(Job(job.conf, item, job.conversation, gen.seed, error))
                continue
            history = [*job.conversation, {"role": "assistant", "content": text}]
            question = {"role": "user", "content": item.question}
            later.append(Job(job.conf, item, [*history, question], gen.seed))
        jobs = answer(later, gen)
        done += jobs
    fault_point("score")
    grade = judged_grader(done, bench, gen, judge) if bench.judged else grader(bench)
    return [make_record(job, bench, grade) for job in done]


def start(job: Job, pool: Pool) -> None:
    """Fill the job's proposals from the shared pool, then ask its method for the first round."""
    fields = job.conf.stream
    for model, count in job.conf.proposers if not job.error else ():
        out, rate = pool[(model, fields, conversation_key(job.conversation))]
        job.error = job.error or out.message
        job.events += [SYSTEM_FOLDED] if out.folded else []
        for j, c in enumerate(out.completions[:count]):
            job.proposals.append(
                Proposal(model, j, c.text, out.prompt_tokens, c.tokens, c.finish_reason)
            )
            job.proposal_s.append(c.tokens * rate)
    if not job.error:
        job.apply(job.method.start(job))


def answer(jobs: list[Job], gen: Generator) -> list[Job]:
    """Proposals, then aggregation rounds, until no job asks for more; returns `jobs`."""
    pool = gen.propose(jobs)
    for job in jobs:
        start(job, pool)
    round_no = 0
    while active := [job for job in jobs if job.requests]:
        round_no += 1
        by_model: dict[str, list[tuple[Job, int, Request]]] = {}
        for job in active:
            for index, request in enumerate(job.requests):
                by_model.setdefault(request.model, []).append((job, index, request))
        stage = "aggregate" if round_no == 1 else f"aggregate-{round_no}"
        inbox: dict[tuple[int, int], tuple] = {}
        for model in sorted(by_model, key=lambda name: name != gen.slot.resident):
            entries = by_model[model]
            served = gen.stage(stage, model, [(r.conversation, r.sampling) for _, _, r in entries])
            for (job, index, _), result in zip(entries, served, strict=True):
                inbox[(id(job), index)] = result
        for job in active:
            requests = job.requests
            outputs = [inbox[(id(job), i)] for i in range(len(requests))]
            for request, (out, rate) in zip(requests, outputs, strict=True):
                job.events += [SYSTEM_FOLDED] if out.folded else []
                if out.completions:
                    c = out.completions[0]
                    job.rounds.append(
                        Round(
                            request.model,
                            request.mode,
                            request.layer,
                            c.text,
                            out.prompt_tokens,
                            c.tokens,
                            c.finish_reason,
                        )  # fmt: skip
                    )
                    job.round_s.append(c.tokens * rate)
            if too_long := next((out for out, _ in outputs if out.too_long), None):
                job.apply(job.method.over_budget(job, too_long, requests))
            elif failed := next((out for out, _ in outputs if out.error), None):
                job.apply(Step(error=failed.message))  # e.g. a served request that failed
            else:
                job.apply(job.method.advance(job, [out.completions[0].text for out, _ in outputs]))
    return jobs


def run_study(
    run: RunConfig, confs: list[Configuration], items: list[Item], bench: Benchmark
) -> tuple[list[Record], list[StageStats], Store]:
    """`execute` with the run's models (one resident at a time) and store: the records, the
    stages it ran and the store (its counts of skipped lines)."""
    slot = ModelSlot(run.models, run.engine, run.seed)
    try:
        store = Store(run.store_dir)
        log.info("store %s: %s", run.store_dir, store.summary())
        gen = Generator(slot, store, run.seed)
        return execute(confs, items, bench, gen, run.benchmark.judge), gen.stages, store
    finally:
        slot.close()


def propose_only(
    run: RunConfig, confs: list[Configuration], items: list[Item], bench: Benchmark
) -> list[StageStats]:
    """Only the proposal stages of every configuration (of `run.phase_model` when set), into
    the store: phase 1 of the two-phase SLURM pattern."""
    models = None if run.phase_model is None else {run.phase_model}
    slot = ModelSlot(run.models, run.engine, run.seed)
    gen = Generator(slot, Store(run.store_dir), run.seed)
    try:
        gen.propose([Job(c, i, bench.messages(i), run.seed) for c in confs for i in items], models)
    finally:
        slot.close()
    return gen.stages
