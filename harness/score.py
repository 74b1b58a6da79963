"""Scoring: extract and score every proposal and final answer, or have a judge model rate them;
then one `Record` per job.

Exact benchmarks: the benchmark's `extract_answer` then `score` (pure, no model). Judged
benchmarks: every distinct (conversation, response) of the study, proposals included, goes to
the judge model in one batched, stored stage; an unreadable verdict scores None (counted, left
out of means, never guessed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from harness.benchmarks import Benchmark, Item
from harness.engines import Conversation, Sampling
from harness.errors import ConfigError
from harness.generate import Generator, conversation_key
from harness.methods import Job
from harness.records import Record

# (job, text) -> {"answer": ..., "score": ..., ["judgment": ...]}
Grader = Callable[[Job, str], dict]


def grader(bench: Benchmark) -> Grader:
    """Exact scoring: the extracted answer and its score, once per (item, text).

    A proposal is shared by every configuration that uses it (Table 3: one sample, 18 records),
    and extraction and scoring are pure, so each distinct text of an item is graded once.
    """
    graded: dict[tuple[str, int, str], dict] = {}

    def grade(job: Job, text: str) -> dict:
        key = (job.item.id, job.item.turn, text)
        if key not in graded:
            answer = bench.extract_answer(text)
            graded[key] = {"answer": answer, "score": bench.score(job.item, answer)}
        return dict(graded[key])

    return grade


def judge_all(
    bench: Benchmark, gen: Generator, judge: str, responses: list[tuple[Item, Conversation, str]]
) -> list[tuple[float | None, dict]]:
    """(score, judgment) of each (item, conversation, response), judged in one batched stage."""
    sampling = Sampling(
        n=1, temperature=0.0, top_p=1.0, max_tokens=bench.cfg.judge_max_tokens, seed=gen.seed
    )
    spans, requests = [], []
    for item, conversation, text in responses:
        convs = bench.judge_conversations(item, conversation, text)
        spans.append((len(requests), len(convs)))
        requests += [(conv, sampling) for conv in convs]
    outputs = [out for out, _ in gen.stage("judge", judge, requests)]
    results = []
    for (first, n), (item, _, _) in zip(spans, responses, strict=True):
        outs = outputs[first : first + n]
        replies = [o.completions[0].text if o.completions else None for o in outs]
        score, verdicts = bench.verdict(item, replies)
        judgment = {"replies": replies, "verdicts": verdicts}
        if error := next((o.message for o in outs if o.error), None):
            judgment["error"] = error
        truncated = sum(c.finish_reason == "length" for o in outs for c in o.completions)
        if truncated:
            judgment["truncated"] = truncated
        results.append((score, judgment))
    return results


def judged_grader(jobs: list[Job], bench: Benchmark, gen: Generator, judge: str | None) -> Grader:
    """Judge every distinct (conversation, response) of the jobs in one batched stage."""
    if judge is None:
        raise ConfigError(f"{bench.label} is judged: set benchmark.judge")
    wanted: dict[tuple[str, str], tuple[Item, Conversation, str]] = {}
    for job in jobs:
        final = job.method.final_text(job, bench.extract_answer)
        for text in [p.text for p in job.proposals] + ([final] if final is not None else []):
            key = (conversation_key(job.conversation), text)
            wanted.setdefault(key, (job.item, job.conversation, text))
    judged = judge_all(bench, gen, judge, list(wanted.values()))
    by_key = dict(zip(wanted, judged, strict=True))

    def grade(job: Job, text: str) -> dict:
        score, judgment = by_key[(conversation_key(job.conversation), text)]
        return {"answer": None, "score": score, "judgment": judgment}

    return grade


def make_record(job: Job, bench: Benchmark, grade: Grader) -> Record:
    """One item of one configuration: every proposal, every round, the final answer, scores."""
    proposals = tuple(replace(p, **grade(job, p.text)) for p in job.proposals)
    final_text = job.method.final_text(job, bench.extract_answer)
    graded = grade(job, final_text) if final_text is not None else {}
    answer, score = graded.get("answer"), graded.get("score", bench.failed_score)
    if job.error:
        outcome = job.error.split(":", 1)[0]
    elif final_text is None:
        outcome = "no_output"
    elif bench.judged:  # a judge prompt over the judge's context is `judge_prompt_too_long`
        judge_error = graded["judgment"].get("error", "unparsed").split(":", 1)[0]
        outcome = "ok" if score is not None else f"judge_{judge_error}"
    else:
        outcome = "ok" if answer is not None else "no_answer"
    generations = [*job.proposals, *job.rounds]
    return Record(
        configuration=job.conf.label,
        method=job.method.name,
        item_id=job.item.id,
        turn=job.item.turn,
        question=job.item.question,
        reference=job.item.reference,
        proposals=proposals,
        rounds=tuple(job.rounds),
        aggregation=job.final,
        order=tuple(job.order),
        events=tuple(job.events),
        final_text=final_text,
        answer=answer,
        score=score,
        judgment=graded.get("judgment"),
        outcome=outcome,
        error=job.error,
        calls=len(generations),
        prompt_tokens=sum(g.prompt_tokens for g in generations),
        generated_tokens=sum(g.generated_tokens for g in generations),
        gen_s=sum(job.proposal_s) + sum(job.round_s),
    )
