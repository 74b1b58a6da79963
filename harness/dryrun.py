"""The dry run: what a study needs, printed before any model loads (no engine, no vLLM import).

    python -m harness.run experiment=paper_table3 dry_run=true      # one block per sweep point
    python -m harness.run -m method.k=2,4 benchmark=gsm8k,math500 dry_run=true

A block gives the configurations; per model its parameters, dtype, engine, tensor parallel size,
generations (proposals, aggregations, judgements), tokens (prompt and generated) and hours at its
engine's `tokens_per_s_hint` (generated) and `prompt_tokens_per_s_hint` (prompt); the stages;
and per model the memory it needs (harness.sizing: weights, overhead, KV cache of one
max_model_len sequence and of the planned batch) against the device. A model that cannot fit
ends the run with one line (exit 2).

Counts are upper bounds before the store serves anything: every generation at its token cap.
Prompt tokens are estimated at CHARS_PER_TOKEN characters a token: a proposal's prompt is the
item's conversation; an aggregation's adds its proposals at their cap (within the aggregator's
context); a judgement's adds one response at its cap. Aggregations are counted on the
configuration's aggregator (MoA's middle layers run on the proposers).
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field

from harness.benchmarks import Benchmark, Item
from harness.config import RunConfig
from harness.engines.factory import engine_config
from harness.errors import ConfigError
from harness.multirun import point_label
from harness.plan import Configuration, configurations, load_items, planned_generations
from harness.sizing import Need, device_of, fit_problem, model_need, size
from harness.tables import format_table

CHARS_PER_TOKEN = 4.0


@dataclass
class ModelPlan:
    """What one model generates in the study (upper bounds), and its largest stage."""

    name: str
    proposals: int = 0
    aggregations: int = 0
    judgements: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    batch: int = 0  # sequences of its largest stage
    seq_tokens: int = 0  # its longest sequence, prompt and generation
    stages: list[str] = field(default_factory=list)

    def stage(self, kind: str, sequences: int, tokens: int) -> None:
        if kind not in self.stages:
            self.stages.append(kind)
        self.batch = max(self.batch, sequences)
        self.seq_tokens = max(self.seq_tokens, tokens)


def prompt_tokens(bench: Benchmark, items: list[Item]) -> int:
    """Mean tokens of an item's conversation (estimated from its characters)."""
    chars = [sum(len(m["content"]) for m in bench.messages(i)) for i in items]
    return math.ceil(sum(chars) / max(1, len(chars)) / CHARS_PER_TOKEN)


def model_plans(
    run: RunConfig, confs: list[Configuration], items: int, turns: int, question: int
) -> dict[str, ModelPlan]:
    """Per model: its proposals (one stream per sampling, as the pool shares them),
    aggregations and judgements, with their tokens and its largest stage."""
    plans: dict[str, ModelPlan] = {}
    plan = lambda name: plans.setdefault(name, ModelPlan(name))  # noqa: E731
    scale = items * turns
    streams: dict[tuple, int] = {}
    for c in confs:
        for model, n in c.proposers:
            key = (model, *c.stream)
            streams[key] = max(streams.get(key, 0), n)
    for model in dict.fromkeys(key[0] for key in streams):
        mine = {key: n for key, n in streams.items() if key[0] == model}
        p = plan(model)
        p.proposals += sum(mine.values()) * scale
        p.prompt_tokens += len(mine) * scale * question
        p.generated_tokens += sum(n * key[3] for key, n in mine.items()) * scale
        p.stage("propose", sum(mine.values()) * items, question + max(k[3] for k in mine))
    finals = 0
    for c in confs:
        rounds = c.method.planned_rounds()
        finals += scale
        if not rounds or c.aggregator is None:
            continue
        shown = sum(n * c.stream[2] for _, n in c.proposers)
        p = plan(c.aggregator)
        p.aggregations += len(rounds) * scale
        p.generated_tokens += sum(rounds) * scale
        p.prompt_tokens += len(rounds) * scale * (question + shown)
        p.stage("aggregate", items, question + shown + max(rounds))
    judge = getattr(run.benchmark, "judge", None)
    if judge is not None:
        caps = [c.stream[2] for c in confs] + [r for c in confs for r in c.method.planned_rounds()]
        cap, judge_cap = max(caps), run.benchmark.judge_max_tokens
        responses = sum(p.proposals for p in plans.values()) + finals
        p = plan(judge)
        p.judgements += responses
        p.generated_tokens += responses * judge_cap
        p.prompt_tokens += responses * (question + cap)
        p.stage("judge", responses // max(1, turns), question + cap + judge_cap)
    return plans


def count(n: float) -> str:
    """12345678 -> 12.3M."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n:.0f}"


def gib(b: float | None) -> str:
    return "?" if b is None else size(b)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "? (no tokens_per_s_hint)"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{math.ceil(seconds / 60)} min"


def needs(run: RunConfig, plans: dict[str, ModelPlan]) -> dict[str, Need | str]:
    """Each model's Need on its device, or why none is reckoned (served, replayed)."""
    found: dict[str, Need | str] = {}
    devices: dict[str, object] = {}
    for name, p in plans.items():
        model = run.models[name]
        engine = engine_config(model, run.engine)
        if engine.kind != "vllm":
            found[name] = f"{engine.kind} engine: no weights loaded here"
            continue
        if engine.name not in devices:
            devices[engine.name] = device_of(engine)
        kwargs = {**engine.kwargs, **model.engine_kwargs}
        found[name] = model_need(model, kwargs, devices[engine.name], p.batch, p.seq_tokens)
    return found


def memory_row(need: Need | str, problem: str | None) -> list[str]:
    if isinstance(need, str):
        return ["-"] * 6 + [need]
    one, batch = need.one_sequence, need.batch_kv
    kv = "?" if need.kv_per_token is None else f"{need.kv_per_token / 1024:.0f} KiB"
    if problem is not None:
        verdict = "DOES NOT FIT"
    elif need.arch.params is None:
        verdict = f"unknown: no parameter count (set `arch.params` in conf/model/{need.model}.yaml)"
    elif need.at_once is not None and need.at_once < need.batch:
        verdict = f"fits; ~{need.at_once} of the batch at once"
    else:
        verdict = "fits, the whole batch at once"
    return [
        gib(need.weights) if need.arch.params else "?",
        gib(need.overhead),
        kv,
        f"{gib(one)} ({need.context})" if one is not None else "?",
        f"{gib(batch)} ({need.batch} x {need.seq_tokens})" if batch is not None else "?",
        gib(need.usable),
        verdict,
    ]


def block(
    run: RunConfig, confs: list[Configuration], bench: Benchmark, items: list[Item]
) -> tuple[str, list[str]]:
    """The dry run's text for one study, and the lines of every model that cannot fit."""
    question = prompt_tokens(bench, items)
    plans = model_plans(run, confs, len(items), bench.turns, question)
    point = point_label()
    head = f"dry run{f' of point {point}' if point else ''}: no model loaded"
    labels = textwrap.fill(", ".join(c.label for c in confs), 100, subsequent_indent="  ")
    lines = [
        head,
        f"benchmark {bench.name}: {len(items)} items, {bench.turns} turn(s), ~{question} prompt "
        f"tokens each (at {CHARS_PER_TOKEN:g} characters a token)",
        f"{len(confs)} configurations: {labels}",
    ]
    rows, found, problems, seconds = [], needs(run, plans), {}, []
    for name, p in plans.items():
        model, engine = run.models[name], engine_config(run.models[name], run.engine)
        rate, prefill = engine.tokens_per_s_hint, engine.prompt_tokens_per_s_hint
        seconds.append(
            p.generated_tokens / rate + (p.prompt_tokens / prefill if prefill > 0 else 0)
            if rate > 0
            else None
        )
        need = found[name]
        sized = isinstance(need, Need)
        params = need.arch.params if sized else None
        rows.append([
            name, engine.name,
            f"{params / 1e9:.2f}B" if params else "?",
            need.dtype if sized else "-",
            need.tp if sized else "-",
            count(p.proposals), count(p.aggregations), count(p.judgements),
            count(p.prompt_tokens), count(p.generated_tokens),
            duration(seconds[-1]),
        ])  # fmt: skip
        problem = fit_problem(need, model) if sized else None
        if problem:
            problems[name] = problem
    total = planned_generations(confs, len(items), bench.turns)
    generated = sum(p.generated_tokens for p in plans.values())
    known = None if None in seconds else sum(seconds)
    rows.append([
        "total", "", "", "", "", count(total["proposals"]), count(total["aggregations"]),
        count(sum(p.judgements for p in plans.values())),
        count(sum(p.prompt_tokens for p in plans.values())), count(generated), duration(known),
    ])  # fmt: skip
    headers = ["model", "engine", "params", "dtype", "tp", "proposals", "aggregations",
               "judgements", "prompt tok", "generated tok", "hours"]  # fmt: skip
    lines.append(format_table(headers, rows))
    stages = [f"{kind} on {name}" for name, p in plans.items() for kind in p.stages]
    order = sorted(stages, key=lambda s: ("propose", "aggregate", "judge").index(s.split()[0]))
    lines.append(f"stages (one batched engine call each, at least): {'; '.join(order)}")
    engines = {e.name: e for e in map(engine_config, run.models.values(),
               [run.engine] * len(run.models))}  # fmt: skip
    lines.append(
        "hours: generated tokens at each engine's tokens_per_s_hint ("
        + ", ".join(f"{e.name} {e.tokens_per_s_hint:g}/s" for e in engines.values())
        + ") plus prompt tokens at its prompt_tokens_per_s_hint ("
        + ", ".join(f"{e.name} {e.prompt_tokens_per_s_hint:g}/s" for e in engines.values())
        + "; 0: not counted), every generation at its token cap and nothing yet in the store"
    )
    lines += memory_lines(found, problems)
    return "\n".join(lines), list(problems.values())


def memory_lines(found: dict[str, Need | str], problems: dict[str, str]) -> list[str]:
    devices = {n.device for n in found.values() if isinstance(n, Need)}
    if not devices:
        return ["memory: no model is loaded in this process"]
    lines = []
    for d in devices:
        if d.kind == "cuda":
            lines.append(f"memory per GPU: {d.describe()}, {d.count} per node")
        else:
            lines.append(f"memory of the host: {d.describe()}")
    headers = ["model", "weights", "overhead", "KV/token", "KV 1 sequence",
               "KV of the batch", "usable", "verdict"]  # fmt: skip
    rows = [[name, *memory_row(need, problems.get(name))] for name, need in found.items()]
    return [*lines, format_table(headers, rows)]


def dry_run(run: RunConfig) -> str:
    """Print the study's block; ConfigError (one line) when a model cannot fit."""
    bench, items = load_items(run)
    text, problems = block(run, configurations(run), bench, items)
    print(text, flush=True)
    if problems:
        raise ConfigError(problems[0])
    return text
