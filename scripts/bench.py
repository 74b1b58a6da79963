"""Benchmark of the study engine. Prints a table and writes JSON; asserts nothing.

On one model, the same GSM8K prompts and the same sampling parameters, in one process:
  (a) the harness's proposal stage (store lookups, length checks, store writes) vs a bare
      `LLM.chat` call: throughput ratio
  (b) the batched Self-MoA schedule (one call for all proposals, one for all aggregations)
      vs a per-question loop (proposals then aggregation, one question at a time, as the
      reference MoA code does)
  (c) the same study again with a warm store: seconds and generations made (expected 0)
  memory: resident memory before loading, loaded, after release, and after loading again

Usage:
    python scripts/bench.py                                   # SmolLM2, 8 items, k=4
    python scripts/bench.py --model qwen2.5-coder-0.5b-instruct --items 16 --k 6
    python scripts/bench.py --engine gpu --model qwen2-7b-instruct --items 128 --k 6
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from harness import benchmarks
from harness.config import (
    BenchmarkConfig,
    MethodConfig,
    compose,
    load_model_config,
    to_run_config,
)
from harness.engines.vllm import Sampling, VllmEngine
from harness.methods import ModelSlot, configurations, execute, item_seed, run_stage
from harness.prompts import aggregation_messages
from harness.store import Store


def rss_gib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**30


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--engine", default="cpu")
    ap.add_argument("--items", type=int, default=8)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared/data"))
    ap.add_argument("--out", default="runs/bench.json")
    args = ap.parse_args()

    run = to_run_config(
        compose(
            f"engine={args.engine}",
            f"model={args.model}",
            f"method.k={args.k}",
            f"method.max_tokens={args.max_tokens}",
            f"method.aggregator_max_tokens={args.max_tokens}",
            f"benchmark.limit={args.items}",
            "baseline=false",
        )
    )
    run.benchmark = BenchmarkConfig(name="gsm8k", data_dir=args.data_dir, limit=args.items)
    bench = benchmarks.get(run.benchmark)
    items = bench.load()
    m: MethodConfig = run.method
    convs = [bench.messages(i) for i in items]
    params = [
        Sampling(
            n=m.k,
            temperature=m.temperature,
            max_tokens=m.max_tokens,
            seed=item_seed(run.seed, i.id),
        )
        for i in items
    ]
    model = load_model_config(args.model)
    figures: dict = {
        "model": args.model,
        "engine": args.engine,
        "items": len(items),
        "k": m.k,
        "max_tokens": m.max_tokens,
    }

    figures["rss_before_gib"] = rss_gib()
    engine = VllmEngine(model, run.engine, run.seed)
    figures["load_s"] = engine.load_s
    figures["rss_loaded_gib"] = rss_gib()
    slot = ModelSlot(run.models, lambda _: engine)
    slot.engine = engine

    # (a) bare LLM.chat vs the harness's stage, same prompts and sampling parameters
    from vllm import SamplingParams

    bare_params = [
        SamplingParams(n=p.n, temperature=p.temperature, max_tokens=p.max_tokens, seed=p.seed)
        for p in params
    ]
    bare, bare_s = timed(lambda: engine.llm.chat(convs, bare_params, use_tqdm=False))
    bare_tokens = sum(len(c.token_ids) for r in bare for c in r.outputs)
    with tempfile.TemporaryDirectory() as tmp:
        (_, made, _), stage_s = timed(
            lambda: run_stage(
                slot, Store(tmp), "propose", args.model, list(zip(convs, params, strict=True))
            )
        )
    figures["a"] = {
        "bare_s": bare_s,
        "bare_tokens_per_s": bare_tokens / bare_s,
        "harness_s": stage_s,
        "harness_tokens_per_s": sum(made) / stage_s,
        "ratio": (sum(made) / stage_s) / (bare_tokens / bare_s),
    }

    # (b) batched Self-MoA schedule vs a per-question loop; (c) again with a warm store
    confs = configurations(run)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        (records, stages), batched_s = timed(
            lambda: execute(confs, items, bench, slot, store, run.seed)
        )
        (_, warm_stages), warm_s = timed(
            lambda: execute(confs, items, bench, slot, store, run.seed)
        )
    batched_tokens = sum(r["generated_tokens"] for r in records)

    def per_question() -> int:
        tokens = 0
        for conv, p in zip(convs, params, strict=True):
            out = engine.chat([conv], [p])[0]
            agg = aggregation_messages(conv, [c.text for c in out.completions])
            final = engine.chat([agg], [Sampling(max_tokens=m.aggregator_max_tokens)])[0]
            tokens += sum(c.tokens for c in out.completions + final.completions)
        return tokens

    loop_tokens, loop_s = timed(per_question)
    figures["b"] = {
        "batched_s": batched_s,
        "batched_tokens_per_s": batched_tokens / batched_s,
        "loop_s": loop_s,
        "loop_tokens_per_s": loop_tokens / loop_s,
        "speedup": loop_s / batched_s,
    }
    figures["c"] = {
        "cold_s": batched_s,
        "warm_s": warm_s,
        "cold_made": sum(s.made for s in stages),
        "warm_made": sum(s.made for s in warm_stages),
        "warm_found": sum(s.found for s in warm_stages),
    }

    engine.close()
    figures["rss_released_gib"] = rss_gib()
    again = VllmEngine(model, run.engine, run.seed)
    figures["rss_reloaded_gib"] = rss_gib()
    again.close()
    figures["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    a, b, c = figures["a"], figures["b"], figures["c"]
    print(
        f"\n{args.model} ({args.engine}), {len(items)} GSM8K items, k={m.k}, "
        f"max_tokens {m.max_tokens}, load {figures['load_s']:.1f} s"
    )
    print(
        f"(a) proposal stage   bare LLM.chat {a['bare_tokens_per_s']:8.1f} tok/s | harness "
        f"{a['harness_tokens_per_s']:8.1f} tok/s | ratio {a['ratio']:.2f}"
    )
    print(
        f"(b) Self-MoA         per-question  {b['loop_s']:8.1f} s     | batched "
        f"{b['batched_s']:8.1f} s     | speedup {b['speedup']:.2f}x"
    )
    print(
        f"(c) warm store       cold {c['cold_s']:.1f} s, made {c['cold_made']} | warm "
        f"{c['warm_s']:.2f} s, made {c['warm_made']}, found {c['warm_found']}"
    )
    print(
        f"memory (RSS GiB)     before {figures['rss_before_gib']:.2f} | loaded "
        f"{figures['rss_loaded_gib']:.2f} | released {figures['rss_released_gib']:.2f} | "
        f"reloaded {figures['rss_reloaded_gib']:.2f} | peak {figures['peak_rss_gib']:.2f}"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
