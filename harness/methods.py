"""Ensemble methods as batched stages over a shared proposal pool.

Methods (names are `method=` options and `configurations[].name` values):
    single         one answer of one model (greedy by default): the baseline
    majority_vote  k samples of one model, the most frequent extracted answer (no LLM call)
    self_moa       k samples of one model, then one aggregation (Li et al. 2025)
    mixed_moa      samples of several models (a letter multiset such as `qqqsss`), optional
                   intermediate layers, then one aggregation (Wang et al. 2024)
    self_moa_seq   k samples aggregated in a sliding window: the first round sees samples
                   0..w-1; each later round sees the current synthesis repeated r times plus the
                   next w-r samples, until all k are used
    usc            the aggregator picks the most consistent sample by number (universal
                   self-consistency); an unparseable choice falls back to sample 0, counted

A run executes all its configurations together, stage by stage, never question by question:
    propose: per model, ONE engine.chat over every item, n = the most samples any configuration
             needs of that model at those sampling parameters; sample j of model M on item i is
             shared by every configuration that uses it
    rounds:  per aggregator model, ONE engine.chat per round over every (configuration, item)
             still aggregating (MoA layers and Self-MoA-Seq windows are rounds)
    score:   extract and score every proposal and every final answer (pure, no model)
One model is resident at a time (`ModelSlot`); load and generation seconds are kept apart.
Every generation goes to the content-addressed store (harness.store) as soon as its stage ends;
a stage first serves what the store already has, so a re-run or a resumed run regenerates
nothing, and a model whose stage is fully stored is not even loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from harness.benchmarks import Benchmark, Item
from harness.config import ConfigError, MethodConfig, ModelConfig, RunConfig
from harness.engines import Completion, Conversation, Engine, Output, Sampling
from harness.engines.vllm import model_identity
from harness.records import Generation
from harness.prompts import aggregation_messages, parse_usc_choice, usc_messages
from harness.store import Store, generation_key

log = logging.getLogger(__name__)

EngineFactory = Callable[[ModelConfig], Engine]
AGGREGATING = ("self_moa", "mixed_moa", "self_moa_seq", "usc")


@dataclass(frozen=True)
class Configuration:
    label: str  # unique within a run: "single", "self_moa(k=4)", "mixed_moa(qqqsss)", ...
    method: MethodConfig
    proposers: tuple[tuple[str, int], ...]  # (model name, samples) in prompt order
    aggregator: str | None  # model name; None for methods without an LLM aggregation


def configuration(m: MethodConfig, run: RunConfig) -> Configuration:
    model = m.model or run.model.name
    short = {name: letter for letter, name in run.letters.items()}
    if m.name == "mixed_moa":
        counts = Counter(run.letters[c] for c in m.mixture)
        proposers = tuple(counts.items())
        spec = m.mixture
    else:
        proposers = ((model, 1 if m.name == "single" else m.k),)
        spec = "" if model == run.model.name else short.get(model, model)
    aggregator = (m.aggregator or model) if m.name in AGGREGATING else None
    if m.label:
        return Configuration(m.label, m, proposers, aggregator)
    knobs = [spec] if spec else []
    if m.name == "single" and m.temperature > 0:
        knobs.append(f"T={m.temperature}")
    if m.name not in ("single", "mixed_moa"):
        knobs.append(f"k={m.k}")
    if aggregator and aggregator != model:
        knobs.append(f"agg={short.get(aggregator, aggregator)}")
    if m.name in ("self_moa", "mixed_moa") and m.layers != 2:
        knobs.append(f"layers={m.layers}")
    label = f"{m.name}({','.join(knobs)})" if knobs else m.name
    return Configuration(label, m, proposers, aggregator)


def configurations(run: RunConfig) -> list[Configuration]:
    """The run's configurations: `configurations` (a study) or `method`, after the baselines."""
    confs = [configuration(m, run) for m in (run.configurations or [run.method])]
    if run.baseline:
        models = dict.fromkeys(name for c in confs for name, _ in c.proposers)
        greedy = [
            configuration(
                MethodConfig(name="single", model=name, max_tokens=confs[0].method.max_tokens), run
            )
            for name in models
        ]
        confs = [g for g in greedy if g.label not in {c.label for c in confs}] + confs
    labels = [c.label for c in confs]
    if len(set(labels)) != len(labels):
        dup = next(x for x in labels if labels.count(x) > 1)
        raise ConfigError(f"two configurations are both labelled {dup!r}; give one a `label`")
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
                found[i][j] = Generation(
                    keys[i][j], identity, stage, j, c.text, c.tokens, c.finish_reason,
                    out.prompt_tokens,
                )
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
            got[0].prompt_tokens,
            tuple(Completion(g.text, g.tokens, g.finish_reason) for g in got),
        )
        for i, got in enumerate(found)
    ]
    return results, made, stats


SHORTENED = " [...shortened]"


def shortened(texts: list[str], factor: float) -> list[str]:
    """Every text cut to `factor` of its length, visibly marked (never a silent truncation)."""
    return [t[: max(1, int(len(t) * factor))] + SHORTENED for t in texts]


MAX_CONTEXT_ACTIONS = 4  # then the item fails as prompt_too_long (the prompt alone is too long)


@dataclass
class Job:
    """One (configuration, item) on its way from proposals to a final answer.

    Each round `requests()` lists what the job needs generated (model, conversation, sampling);
    the executor batches those of all jobs per model and hands the outputs back to `receive`,
    then `advance()` moves the job to its next round or finishes it.
    """

    conf: Configuration
    item: Item
    conversation: Conversation
    proposals: list[dict]
    seed: int
    error: str | None = None
    rounds: list[dict] = field(default_factory=list)  # every aggregation-round generation
    events: list[str] = field(default_factory=list)  # context-budget actions, parse failures
    order: list[int] = field(default_factory=list)  # proposal order in the final prompt
    final: dict | None = None
    done: bool = False

    def __post_init__(self) -> None:
        m = self.conf.method
        self.mode = {"self_moa": "layers", "mixed_moa": "layers"}.get(m.name, m.name)
        self.responses = [p["text"] for p in self.proposals]  # what the next round aggregates
        self.index = list(range(len(self.proposals)))  # responses[i] is proposals[index[i]]
        self.layer = 2  # proposals are layer 1
        self.synthesis: str | None = None
        self.seq_next = 0
        self.inbox: dict[int, tuple[Output, float]] = {}
        self.pending: list[tuple[str, Conversation, Sampling]] = []
        if self.error or self.mode not in ("layers", "self_moa_seq", "usc"):
            self.done = True

    def _ordered(self, texts: list[str], tag: str) -> tuple[list[str], list[int]]:
        order = list(range(len(texts)))
        if self.conf.method.shuffle:  # against position bias: a seeded permutation per item
            random.Random(f"{self.seed}:{self.item.id}:{tag}").shuffle(order)
        return [texts[i] for i in order], order

    def _final_sampling(self) -> Sampling:
        m = self.conf.method
        return Sampling(
            n=1,
            temperature=m.aggregator_temperature,
            top_p=1.0,
            max_tokens=m.aggregator_max_tokens,
            seed=item_seed(self.seed + 1, f"{self.item.id}/{self.mode}/{len(self.rounds)}"),
        )

    def requests(self) -> list[tuple[str, Conversation, Sampling]]:
        m, agg = self.conf.method, self.conf.aggregator
        if self.mode == "layers" and self.layer < m.layers:  # intermediate MoA layer
            self.pending = []
            for slot, p in enumerate(self.proposals):
                texts, _ = self._ordered(self.responses, f"L{self.layer}/{slot}")
                seed = item_seed(self.seed, f"{self.item.id}/L{self.layer}/{slot}")
                self.pending.append(
                    (
                        p["model"],
                        aggregation_messages(self.conversation, texts),
                        Sampling(
                            n=1,
                            temperature=m.temperature,
                            top_p=m.top_p,
                            max_tokens=m.max_tokens,
                            seed=seed,
                        ),
                    )
                )
        elif self.mode == "layers":
            texts, self.order = self._ordered(self.responses, "final")
            self.order = [self.index[i] for i in self.order]
            self.pending = [
                (agg, aggregation_messages(self.conversation, texts), self._final_sampling())
            ]
        elif self.mode == "usc":
            texts, self.order = self._ordered(self.responses, "usc")
            self.order = [self.index[i] for i in self.order]
            self.pending = [(agg, usc_messages(self.conversation, texts), self._final_sampling())]
        else:  # self_moa_seq
            w, r = m.window, m.reserved
            if self.synthesis is None:
                window = self.responses[:w]
            else:
                window = [self.synthesis] * r + self.responses[
                    self.seq_next : self.seq_next + w - r
                ]
            self.pending = [
                (agg, aggregation_messages(self.conversation, window), self._final_sampling())
            ]
        return self.pending

    def receive(self, index: int, output: Output, seconds_per_token: float) -> None:
        self.inbox[index] = (output, seconds_per_token)

    def advance(self) -> None:
        outputs = [self.inbox.pop(i) for i in range(len(self.pending))]
        for (model, _, _), (out, rate) in zip(self.pending, outputs, strict=True):
            if out.completions:
                c = out.completions[0]
                self.rounds.append(
                    {
                        "model": model,
                        "mode": self.mode,
                        "layer": self.layer,
                        "text": c.text,
                        "prompt_tokens": out.prompt_tokens,
                        "generated_tokens": c.tokens,
                        "finish_reason": c.finish_reason,
                        "gen_s": c.tokens * rate,
                    }
                )
        if too_long := next((o for o, _ in outputs if o.error), None):
            self._over_budget(too_long)
            return
        texts = [o.completions[0].text for o, _ in outputs]
        m = self.conf.method
        if self.mode == "layers" and self.layer < m.layers:
            self.responses, self.index = texts, list(range(len(self.proposals)))
            self.layer += 1
        elif self.mode == "usc":
            choice = parse_usc_choice(texts[0], len(self.order))
            if choice is None:
                self.events.append("usc_parse_failed")
                picked = 0  # documented fallback: the first sample of the first proposer
            else:
                picked = self.order[choice - 1]
            self.final = {
                **self.rounds[-1],
                "text": self.proposals[picked]["text"],
                "selection": texts[0],
                "choice": None if choice is None else picked,
            }
            self.done = True
        elif self.mode == "self_moa_seq":
            used = m.window if self.synthesis is None else m.window - m.reserved
            self.seq_next += used
            self.synthesis = texts[0]
            if self.seq_next >= len(self.responses):
                self.final, self.done = self.rounds[-1], True
        else:
            self.final, self.done = self.rounds[-1], True

    def final_text(self, extract: Callable[[str], str | None]) -> str | None:
        """The configuration's answer: the aggregation, the majority's sample or the sample."""
        if self.final is not None:
            return self.final["text"]
        if not self.proposals or self.conf.aggregator is not None:
            return None
        if self.conf.method.name == "majority_vote":
            pick = majority([extract(p["text"]) for p in self.proposals])
            return self.proposals[pick or 0]["text"]
        return self.proposals[0]["text"]

    def _over_budget(self, out: Output) -> None:
        """The context-budget policy: never truncate silently, count every case."""
        policy = self.conf.method.context_policy
        self.events.append(f"context_{policy}")
        hopeless = len(self.events) > MAX_CONTEXT_ACTIONS or (
            policy == "drop_longest" and len(self.responses) == 1
        )
        if policy == "fail" or hopeless:
            self.error, self.done = out.message, True
        elif policy == "drop_longest":
            longest = max(range(len(self.responses)), key=lambda i: len(self.responses[i]))
            del self.responses[longest], self.index[longest]
        elif policy == "seq" and self.mode != "self_moa_seq":
            self.mode, self.synthesis, self.seq_next = "self_moa_seq", None, 0
        else:  # shorten (also when a Self-MoA-Seq window itself does not fit)
            prompt, limit = out.prompt_tokens, out.context_limit
            room = limit - self.conf.method.aggregator_max_tokens  # leave room for the answer
            # chars to cut, assuming tokens are spread evenly over the prompt's characters
            sent = sum(len(m["content"]) for m in self.pending[0][1])
            cut = sent * (1 - room / prompt) * 1.1 + len(SHORTENED) * len(self.responses)
            total = sum(len(t) for t in self.responses)
            factor = max(0.05, min(0.95, (total - cut) / total)) if total else 0.05
            self.responses = shortened(self.responses, factor)
            if self.synthesis is not None:
                self.synthesis = shortened([self.synthesis], factor)[0]


def charged(stats: StageStats, out: Output, made_tokens: int) -> float:
    """Seconds per token of this output that this run spent generating (0 if from the store).

    A generation used by several configurations is charged to each of them: the figure is what
    a configuration would cost alone, at the stage's measured rate.
    """
    total = sum(c.tokens for c in out.completions)
    if not stats.generated_tokens or not total:
        return 0.0
    return stats.gen_s / stats.generated_tokens * made_tokens / total


def conversation_key(conversation: Conversation) -> str:
    return hashlib.sha256(json.dumps(conversation, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Task:
    """A configuration asked one item in one conversation (or failed before it could be)."""

    conf: Configuration
    item: Item
    conversation: Conversation
    error: str | None = None


def execute(
    confs: list[Configuration],
    items: list[Item],
    bench: Benchmark,
    slot: ModelSlot,
    store: Store,
    seed: int,
    judge: str | None = None,
) -> tuple[list[dict], list[StageStats]]:
    """Run every configuration on every item: (a record per configuration, item and turn, stages).

    Turn t > 1 of a multi-turn benchmark continues, per configuration, the dialogue of its own
    final answer to turn t - 1. Judged benchmarks then send every proposal and final answer to
    the `judge` model in one batched stage.
    """
    stages: list[StageStats] = []
    jobs = answer(
        [Task(c, i, bench.messages(i)) for c in confs for i in items], slot, store, seed, stages
    )
    done = list(jobs)
    for turn in range(2, bench.turns + 1):
        tasks = []
        for job in jobs:
            item = bench.followup(job.item, turn)
            text = job.final_text(bench.extract_answer)
            if text is None:
                tasks.append(Task(job.conf, item, job.conversation, f"no_turn_{turn - 1}_answer"))
                continue
            history = [*job.conversation, {"role": "assistant", "content": text}]
            tasks.append(
                Task(job.conf, item, [*history, {"role": "user", "content": item.question}])
            )
        jobs = answer(tasks, slot, store, seed, stages)
        done += jobs
    if bench.judged:
        grade = judged_grader(done, bench, slot, store, judge, seed, stages)
    else:
        grade = grader(bench)
    return [make_record(job, bench, grade) for job in done], stages


def stream_lock(identity: str, sampling: Sampling) -> str:
    """Name of the store lock of a stream of proposals: one model at one set of sampling fields."""
    payload = json.dumps([identity, sampling.generation_fields()], sort_keys=True)
    return "propose-" + hashlib.sha256(payload.encode()).hexdigest()[:16]


def propose(
    tasks: list[Task],
    slot: ModelSlot,
    store: Store,
    seed: int,
    stages: list[StageStats],
    models: set[str] | None = None,
) -> dict[tuple, tuple[Output, float]]:
    """The proposal stages of `tasks` (only of `models` when given): one batched stage per model.

    Per model and sampling parameters, the most samples any configuration needs of one
    conversation (configurations asking the same conversation share them). Returns
    pool[(model, (temperature, top_p, max_tokens), conversation key)] = (output, generation
    seconds per generated token charged to it).
    """
    streams: dict[str, dict[tuple, dict[str, tuple[Task, int]]]] = {}
    for task in tasks:
        if task.error:
            continue
        m = task.conf.method
        for model, count in task.conf.proposers:
            fields = (m.temperature, m.top_p, m.max_tokens)
            convs = streams.setdefault(model, {}).setdefault(fields, {})
            key = conversation_key(task.conversation)
            convs[key] = (task, max(count, convs.get(key, (task, 0))[1]))
    pool: dict[tuple, tuple[Output, float]] = {}
    aggregators = {t.conf.aggregator for t in tasks}
    # the resident model first, aggregator models last: each is then loaded once if it can be
    for model in sorted(streams, key=lambda n: (n != slot.resident, n in aggregators)):
        if models is not None and model not in models:
            continue
        keys, requests = [], []
        for fields, convs in streams[model].items():
            for key, (task, n) in convs.items():
                keys.append((model, fields, key))
                sampling = Sampling(
                    n=n,
                    temperature=fields[0],
                    top_p=fields[1],
                    max_tokens=fields[2],
                    seed=item_seed(seed, task.item.id),
                )
                requests.append((task.conversation, sampling))
        # concurrent jobs sharing the store generate a stream (model, sampling) one at a time
        locks = {stream_lock(slot.identity(model), p) for _, p in requests}
        with store.claim(sorted(locks)):
            outputs, made, stats = run_stage(slot, store, "propose", model, requests)
        stages.append(stats)
        pool.update(
            (key, (out, charged(stats, out, tokens)))
            for key, out, tokens in zip(keys, outputs, made, strict=True)
        )
    return pool


def answer(
    tasks: list[Task], slot: ModelSlot, store: Store, seed: int, stages: list[StageStats]
) -> list[Job]:
    """Proposals, then aggregation rounds, for every task: one finished `Job` per task."""

    def resident_first(models):
        return sorted(models, key=lambda name: name != slot.resident)

    pool = propose(tasks, slot, store, seed, stages)

    # 2. One job per task, fed from the shared pool.
    jobs = []
    for task in tasks:
        m = task.conf.method
        proposals, error = [], task.error
        for model, count in task.conf.proposers if not error else ():
            fields = (m.temperature, m.top_p, m.max_tokens)
            out, rate = pool[(model, fields, conversation_key(task.conversation))]
            error = error or out.message
            proposals += [
                {
                    "model": model,
                    "sample_index": j,
                    "text": c.text,
                    "prompt_tokens": out.prompt_tokens,
                    "generated_tokens": c.tokens,
                    "finish_reason": c.finish_reason,
                    "gen_s": c.tokens * rate,
                }
                for j, c in enumerate(out.completions[:count])
            ]
        jobs.append(Job(task.conf, task.item, task.conversation, proposals, seed, error=error))

    # 3. Aggregation rounds: per round and model, one batched call over all active jobs.
    round_no = 0
    while active := [job for job in jobs if not job.done]:
        round_no += 1
        by_model: dict[str, list[tuple[Job, int, Conversation, Sampling]]] = {}
        for job in active:
            for index, (model, conv, sampling) in enumerate(job.requests()):
                by_model.setdefault(model, []).append((job, index, conv, sampling))
        stage = "aggregate" if round_no == 1 else f"aggregate-{round_no}"
        for model in resident_first(by_model):
            entries = by_model[model]
            outputs, made, stats = run_stage(
                slot, store, stage, model, [(conv, s) for _, _, conv, s in entries]
            )
            stages.append(stats)
            for (job, index, _, _), out, tokens in zip(entries, outputs, made, strict=True):
                job.receive(index, out, charged(stats, out, tokens))
        for job in active:
            job.advance()
    return jobs


Grader = Callable[["Job", str], dict]


def grader(bench: Benchmark) -> Grader:
    """Exact scoring: the extracted answer and its score."""

    def grade(job: Job, text: str) -> dict:
        answer = bench.extract_answer(text)
        return {"answer": answer, "score": bench.score(job.item, answer)}

    return grade


def judge_all(
    bench: Benchmark,
    slot: ModelSlot,
    store: Store,
    judge: str,
    seed: int,
    stages: list[StageStats],
    responses: list[tuple[Item, Conversation, str]],
) -> list[tuple[float | None, dict]]:
    """(score, judgment) of each (item, conversation, response), judged in one batched stage."""
    sampling = Sampling(
        n=1, temperature=0.0, top_p=1.0, max_tokens=bench.cfg.judge_max_tokens, seed=seed
    )
    spans, requests = [], []
    for item, conversation, text in responses:
        convs = bench.judge_conversations(item, conversation, text)
        spans.append((len(requests), len(convs)))
        requests += [(conv, sampling) for conv in convs]
    outputs, _, stats = run_stage(slot, store, "judge", judge, requests)
    stages.append(stats)
    results = []
    for (first, n), (item, _, _) in zip(spans, responses, strict=True):
        outs = outputs[first : first + n]
        replies = [o.completions[0].text if o.completions else None for o in outs]
        score, verdicts = bench.verdict(item, replies)
        judgment = {"replies": replies, "verdicts": verdicts}
        if error := next((o.message for o in outs if o.error), None):
            judgment["error"] = error
        results.append((score, judgment))
    return results


def judged_grader(
    jobs: list[Job],
    bench: Benchmark,
    slot: ModelSlot,
    store: Store,
    judge: str | None,
    seed: int,
    stages: list[StageStats],
) -> Grader:
    """Judge every distinct (conversation, response) of the jobs in one batched stage."""
    if judge is None:
        raise ConfigError(f"{bench.label} is judged: set benchmark.judge")
    wanted: dict[tuple[str, str], tuple[Item, Conversation, str]] = {}
    for job in jobs:
        final = job.final_text(bench.extract_answer)
        for text in [p["text"] for p in job.proposals] + ([final] if final is not None else []):
            key = (conversation_key(job.conversation), text)
            wanted.setdefault(key, (job.item, job.conversation, text))
    judged = judge_all(bench, slot, store, judge, seed, stages, list(wanted.values()))
    by_key = dict(zip(wanted, judged, strict=True))

    def grade(job: Job, text: str) -> dict:
        score, judgment = by_key[(conversation_key(job.conversation), text)]
        return {"answer": None, "score": score, "judgment": judgment}

    return grade


def majority(answers: list[str | None]) -> int | None:
    """Index of the first proposal whose answer is the most frequent non-empty answer."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    top = max(counts.values())
    return next(i for i, a in enumerate(answers) if a is not None and counts[a] == top)


def make_record(job: Job, bench: Benchmark, grade: Grader) -> dict:
    """One item of one configuration: every proposal, every round, the final answer, scores."""
    proposals = []
    for p in job.proposals:
        proposals.append({**p, **grade(job, p["text"])})
        del proposals[-1]["gen_s"]  # seconds are accounted per record (below), not per text
    final_text = job.final_text(bench.extract_answer)
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
    generations = job.proposals + job.rounds
    return {
        "configuration": job.conf.label,
        "method": job.conf.method.name,
        "item_id": job.item.id,
        "turn": job.item.turn,
        "question": job.item.question,
        "reference": job.item.reference,
        "proposals": proposals,
        "rounds": [{k: v for k, v in r.items() if k != "gen_s"} for r in job.rounds],
        "aggregation": job.final and {k: v for k, v in job.final.items() if k != "gen_s"},
        "order": job.order,
        "events": job.events,
        "final_text": final_text,
        "answer": answer,
        "score": score,
        "judgment": graded.get("judgment"),
        "outcome": outcome,
        "error": job.error,
        "calls": len(generations),
        "prompt_tokens": sum(g["prompt_tokens"] for g in generations),
        "generated_tokens": sum(g["generated_tokens"] for g in generations),
        "gen_s": sum(g["gen_s"] for g in generations),
    }
