"""Engine benchmark: load time, batched vs per-question generation throughput, memory release.

Prints figures; asserts nothing. Uses the harness's own engine and configs on GSM8K questions.

Usage:
    python scripts/bench_engine.py                                  # smollm2, 8 items x 4 samples
    python scripts/bench_engine.py --model qwen2.5-coder-0.5b-instruct --items 8 --k 4
    python scripts/bench_engine.py --engine gpu --model qwen2-7b-instruct --items 64 --k 6
"""

from __future__ import annotations

import argparse
import gc
import resource
import time
from pathlib import Path

from harness import benchmarks
from harness.config import BenchmarkConfig, compose, load_model_config, to_run_config
from harness.engine import Sampling, VllmEngine


def rss_gib() -> float:
    """Current resident memory of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**30


def timed_chat(engine, conversations, params) -> tuple[float, int]:
    start = time.perf_counter()
    outs = engine.chat(conversations, params)
    return time.perf_counter() - start, sum(c.tokens for o in outs for c in o.completions)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--engine", default="cpu")
    ap.add_argument("--items", type=int, default=8)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared/data"))
    args = ap.parse_args()

    engine_cfg = to_run_config(compose(f"engine={args.engine}")).engine
    bench = benchmarks.get(BenchmarkConfig(name="gsm8k", data_dir=args.data_dir, limit=args.items))
    items = bench.load()
    convs = [bench.messages(i) for i in items]
    params = [
        Sampling(n=args.k, temperature=0.7, max_tokens=args.max_tokens, seed=i)
        for i in range(len(items))
    ]

    before = rss_gib()
    engine = VllmEngine(load_model_config(args.model), engine_cfg, seed=0)
    loaded = rss_gib()
    batched_s, batched_tok = timed_chat(engine, convs, params)
    loop_s, loop_tok = 0.0, 0
    for conv, p in zip(convs, params, strict=True):  # the per-question loop MoA scripts use
        s, t = timed_chat(engine, [conv], [p])
        loop_s, loop_tok = loop_s + s, loop_tok + t
    engine.close()
    gc.collect()
    after = rss_gib()

    print(
        f"model {args.model}, engine {args.engine}, {len(items)} items x k={args.k}, "
        f"max_tokens {args.max_tokens}"
    )
    print(f"load:            {engine.load_s:6.1f} s")
    print(
        f"batched:         {batched_s:6.1f} s  {batched_tok:6d} tokens  "
        f"{batched_tok / batched_s:7.1f} tokens/s"
    )
    print(
        f"per-question:    {loop_s:6.1f} s  {loop_tok:6d} tokens  {loop_tok / loop_s:7.1f} tokens/s"
    )
    print(
        f"memory (RSS):    before load {before:.2f} GiB, loaded {loaded:.2f} GiB, "
        f"after close {after:.2f} GiB, peak "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"
    )


if __name__ == "__main__":
    main()
