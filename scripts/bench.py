"""Benchmark of the study engine on one model. Prints a table and writes JSON; asserts nothing.

Same GSM8K prompts and sampling parameters everywhere, one process, one resident model:
  (a) the harness's proposal stage (store lookups, length checks, store writes) vs a bare
      `LLM.chat` on the same requests: throughput ratio
  (b) Self-MoA (k proposals, one aggregation) batched (one call per stage) vs a per-question loop
      (proposals then aggregation, one question at a time, as the reference MoA code does), on
      both sides (harness and bare LLM.chat), at each of --sizes items
  (c) warm vs cold: the batched study again on its warm store (seconds, generations made: 0),
      and the model's load time cold vs loaded again
  (d) proposal-stage tokens/s vs raw decode (same prompts, n and max_tokens, ignore_eos: every
      sequence decodes max_tokens) at the same batch
  (e) the roofline: decode bound from measured memory bandwidth and the parameter bytes (weights
      read once per step for the whole batch) and from measured matmul throughput (2 FLOPs per
      parameter per token); the ratio of raw decode and of the stage to min(those)
  (f) with --compile (or --compile-only): where compiling pays. The model loaded eager and
      compiled (`enforce_eager` true / false; compiled loaded twice: vLLM caches the compiled
      graphs), raw decode at the same batch on each; the crossover = extra load seconds (and
      first-call seconds) / the seconds saved per decoded token, in planned decode tokens:
      `compile_crossover_tokens` of the engine preset (enforce_eager: auto compiles a load
      planned to decode at least that many)
  memory: resident memory (and GPU memory) before loading, loaded, after release, reloaded

Usage (hold the shared lock: flock /tmp/vllm.lock ...):
    python scripts/bench.py                                          # SmolLM2, CPU engine
    python scripts/bench.py --model qwen2.5-coder-0.5b-instruct --sizes 8,32,64
    python scripts/bench.py --set engine.kwargs.dtype=float32 --set engine.kwargs.max_num_seqs=64
    python scripts/bench.py --engine gpu --model qwen2-7b-instruct --sizes 64,256
    python scripts/bench.py --model qwen2.5-coder-0.5b-instruct --compile-only --sizes 16 \
        --max-tokens 128                                             # (f) alone
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from harness import benchmarks
from harness.config import load_model_config
from harness.engines import Sampling
from harness.engines.factory import make_engine
from harness.methods.prompts import aggregation_messages
from harness.plan import checked_run, compose


class Core:
    """Every call into the study core lives here.

    stage(): one proposal stage through the store; study(): the run's method on items, with a
    fresh or warm store.
    """

    def __init__(self, run, engine):
        from harness.generate import ModelSlot

        self.run = run
        self.slot = ModelSlot(run.models, run.engine, run.seed, factory=lambda _: engine)
        self.slot.engine = engine

    @staticmethod
    def item_seed(seed: int, item_id: str) -> int:
        from harness.methods import item_seed

        return item_seed(seed, item_id)

    def generator(self, store_dir: str):
        from harness.generate import Generator
        from harness.store import Store

        return Generator(self.slot, Store(store_dir), self.run.seed)

    def stage(self, store_dir: str, convs: list, params: list[Sampling]) -> int:
        """Generated tokens of one proposal stage (everything missing from a fresh store)."""
        gen = self.generator(store_dir)
        gen.stage("propose", self.run.model.name, list(zip(convs, params, strict=True)))
        return gen.stages[-1].generated_tokens

    def study(self, items: list, bench, store_dir: str) -> tuple[int, int, int]:
        """(generated tokens, sequences made, sequences found) of the run's method on items."""
        from harness.plan import configurations
        from harness.study import execute

        gen = self.generator(store_dir)
        execute(configurations(self.run), items, bench, gen)
        return (
            sum(s.generated_tokens for s in gen.stages),
            sum(s.made for s in gen.stages),
            sum(s.found for s in gen.stages),
        )


def rss_gib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**30


def gpu_gib() -> float | None:
    try:
        import torch

        if torch.cuda.is_available():
            free, total = torch.cuda.mem_get_info()
            return (total - free) / 2**30
    except ImportError:
        pass
    return None


def cpu_seconds() -> tuple[float, float]:
    """(CPU seconds used by the whole machine, by this process) so far."""
    hz = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    with open(f"/proc/{os.getpid()}/stat") as f:
        own = f.read().rsplit(")", 1)[1].split()
    return (sum(cpu[:3]) + cpu[5] + cpu[6]) / hz, (int(own[11]) + int(own[12])) / hz


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def memory_bandwidth_gbs(device: str) -> float:
    """Measured copy bandwidth (bytes read + written per second), best of 5, in GB/s."""
    import torch

    n = 2**28 if device == "cuda" else 2**26  # 1 GiB / 256 MiB of float32
    a = torch.ones(n, device=device)
    b = torch.empty_like(a)
    best = float("inf")
    for _ in range(6):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        b.copy_(a)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * a.numel() * a.element_size() / best / 1e9


def matmul_tflops(device: str, dtype: str) -> float:
    """Measured dense matmul throughput in the model's dtype, best of 5, in TFLOP/s."""
    import torch

    dt = getattr(torch, dtype if dtype in ("bfloat16", "float16") else "float32")
    n = 8192 if device == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=dt)
    best = float("inf")
    for _ in range(6):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ a
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e12


def parameter_count(folder: str) -> int:
    """Parameters in the model folder's safetensors files (tied embeddings counted once); a
    folder without weights (a kit loaded with load_format=dummy): of its config, on the meta
    device."""
    from safetensors import safe_open

    total = 0
    for f in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(f), "pt") as st:
            for name in st.keys():
                total += math.prod(st.get_slice(name).get_shape())
    if total == 0:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))
        total = sum(p.numel() for p in model.parameters())
    return total


def sampling(bench, items, run, seed_of) -> tuple[list, list[Sampling]]:
    m = run.method
    convs = [bench.messages(i) for i in items]
    params = [
        Sampling(
            n=m.k,
            temperature=m.temperature,
            top_p=m.top_p,
            max_tokens=m.max_tokens,
            seed=seed_of(run.seed, i.id),
        )
        for i in items
    ]
    return convs, params


def bare_params(params: list[Sampling], ignore_eos: bool = False) -> list:
    from vllm import SamplingParams

    return [
        SamplingParams(
            n=p.n,
            temperature=p.temperature,
            top_p=p.top_p,
            max_tokens=p.max_tokens,
            seed=p.seed,
            ignore_eos=ignore_eos,
        )
        for p in params
    ]


def bare_tokens(results) -> int:
    return sum(len(c.token_ids) for r in results for c in r.outputs)


def bare_self_moa(engine, convs, params, agg_max_tokens: int) -> int:
    """Bare LLM.chat Self-MoA over these conversations in two calls; generated tokens."""
    chat = engine.llm.chat
    props = chat(convs, bare_params(params), chat_template=engine.chat_template, use_tqdm=False)
    aggs = [
        aggregation_messages(c, [o.text for o in sorted(r.outputs, key=lambda o: o.index)])
        for c, r in zip(convs, props, strict=True)
    ]
    final = chat(
        aggs,
        bare_params([Sampling(max_tokens=agg_max_tokens)] * len(aggs)),
        chat_template=engine.chat_template,
        use_tqdm=False,
    )
    return bare_tokens(props) + bare_tokens(final)


# --sides: which sides of (b) run; argparse refuses any other value (exit 2, naming the choices)
SIDES = {"harness": ("harness",), "bare": ("bare",), "both": ("harness", "bare")}


def schedule(core, engine, bench, items, sides, max_tokens) -> tuple[dict, dict]:
    """(b) for these items: Self-MoA batched vs per question, per side; (c) the warm re-run."""
    convs, params = sampling(bench, items, core.run, core.item_seed)
    row: dict = {"items": len(items)}
    warm: dict = {}
    if "bare" in sides:
        tok, row["bare_batched_s"] = timed(lambda: bare_self_moa(engine, convs, params, max_tokens))
        loop_tok, row["bare_loop_s"] = timed(
            lambda: sum(
                bare_self_moa(engine, [c], [p], max_tokens)
                for c, p in zip(convs, params, strict=True)
            )
        )
        row |= {
            "bare_tokens": tok,
            "bare_loop_tokens": loop_tok,
            "bare_speedup": row["bare_loop_s"] / row["bare_batched_s"],
        }
    if "harness" in sides:
        with tempfile.TemporaryDirectory() as tmp:
            (tok, made, _), row["harness_batched_s"] = timed(lambda: core.study(items, bench, tmp))
            (_, wmade, wfound), warm_s = timed(lambda: core.study(items, bench, tmp))
            warm = {
                "cold_s": row["harness_batched_s"],
                "cold_made": made,
                "warm_s": warm_s,
                "warm_made": wmade,
                "warm_found": wfound,
            }
        with tempfile.TemporaryDirectory() as tmp:
            loop, row["harness_loop_s"] = timed(
                lambda: [core.study([item], bench, f"{tmp}/{j}") for j, item in enumerate(items)]
            )
        row |= {
            "harness_tokens": tok,
            "harness_loop_tokens": sum(x[0] for x in loop),
            "harness_speedup": row["harness_loop_s"] / row["harness_batched_s"],
        }
    return row, warm


def load_and_decode(model, run, eager: bool, convs, params) -> dict:
    """Load the model with `enforce_eager` = eager; its first call; raw decode of the batch."""
    cfg = replace(run.engine, kwargs={**run.engine.kwargs, "enforce_eager": eager})
    engine, load_s = timed(lambda: make_engine(model, cfg, run.seed))
    chat = engine.llm.chat
    hello = [[{"role": "user", "content": "Hi"}]]
    _, first_s = timed(lambda: chat(hello, bare_params([Sampling(max_tokens=4)]), use_tqdm=False))
    template = engine.chat_template
    raw, raw_s = timed(
        lambda: chat(convs, bare_params(params, True), chat_template=template, use_tqdm=False)
    )
    engine.close()
    return {
        "load_s": load_s,
        "first_call_s": first_s,
        "decode_tokens_per_s": bare_tokens(raw) / raw_s,
    }


def compile_crossover(model, run, convs, params) -> dict:
    """(f): eager, then compiled (twice: the second load reads vLLM's compile cache)."""
    e = load_and_decode(model, run, True, convs, params)
    c = load_and_decode(model, run, False, convs, params)
    again = load_and_decode(model, run, False, convs[:1], params[:1])
    saved = 1 / e["decode_tokens_per_s"] - 1 / c["decode_tokens_per_s"]  # s per token
    start_up = c["load_s"] + c["first_call_s"] - e["load_s"] - e["first_call_s"]
    start_again = again["load_s"] + again["first_call_s"] - e["load_s"] - e["first_call_s"]
    return {
        "sequences": sum(p.n for p in params),
        "max_tokens": params[0].max_tokens,
        "eager": e,
        "compiled": c | {"load_again_s": again["load_s"]},
        "gain": c["decode_tokens_per_s"] / e["decode_tokens_per_s"] - 1,
        "start_up_s": start_up,
        "start_up_again_s": start_again,
        "crossover_tokens": start_up / saved if saved > 0 else math.inf,
        "crossover_again_tokens": max(0.0, start_again) / saved if saved > 0 else math.inf,
    }


def print_compile(f: dict) -> None:
    e, c = f["eager"], f["compiled"]
    minutes = f["crossover_tokens"] / e["decode_tokens_per_s"] / 60
    print(
        f"(f) compile           load eager {e['load_s']:.1f} s, compiled {c['load_s']:.1f} s "
        f"(again, cached {c['load_again_s']:.1f} s); decode at {f['sequences']} sequences x "
        f"{f['max_tokens']} tokens: eager {e['decode_tokens_per_s']:.1f} tok/s, compiled "
        f"{c['decode_tokens_per_s']:.1f} tok/s ({f['gain']:+.0%})\n"
        f"    crossover: {f['start_up_s']:.0f} s start-up / saving per token = "
        f"{f['crossover_tokens']:.0f} planned decode tokens (~{minutes:.1f} min of eager "
        f"decode); with the compile cache warm {f['crossover_again_tokens']:.0f} tokens "
        f"(compile_crossover_tokens of the engine preset)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--engine", default="cpu")
    ap.add_argument(
        "--sizes",
        default="8,32,64",
        help="item counts of (b); the last one is used for (a), (c) and (d)",
    )
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument(
        "--sides",
        default="both",
        choices=sorted(SIDES),
        help="sides of (b): harness, bare, or both (default)",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        help="a config override, e.g. engine.kwargs.dtype=float32 (repeatable)",
    )
    ap.add_argument(
        "--model-path",
        help="load this folder instead (e.g. a randomly initialised "
        "model of a real architecture: scripts/gpu_check.py)",
    )
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared/data"))
    ap.add_argument("--out", default="runs/bench.json")
    ap.add_argument("--compile", action="store_true", help="(f): the compile crossover too")
    ap.add_argument("--compile-only", action="store_true", help="(f) alone")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    sides = SIDES[args.sides]

    run = checked_run(
        compose(
            f"engine={args.engine}",
            f"model={args.model}",
            "method=self_moa",
            f"method.k={args.k}",
            "method.temperature=0.7",
            f"method.max_tokens={args.max_tokens}",
            f"method.aggregator_max_tokens={args.max_tokens}",
            "baseline=false",
            "logger.mode=disabled",
            *args.set,
        )
    )
    run.benchmark = benchmarks.knobs(name="gsm8k", data_dir=args.data_dir, limit=max(sizes))
    bench = benchmarks.get(run.benchmark)
    all_items = bench.load()
    model = load_model_config(args.model)
    if args.model_path:
        model.gguf, model.path = None, args.model_path
    run.model = run.models[model.name] = model
    device = "cuda" if args.engine != "cpu" else "cpu"
    figures: dict = {
        "model": args.model,
        "engine": args.engine,
        "overrides": args.set,
        "k": args.k,
        "max_tokens": args.max_tokens,
        "sizes": sizes,
        "rss_before_gib": rss_gib(),
        "gpu_before_gib": gpu_gib(),
    }
    machine0, own0, wall0 = *cpu_seconds(), time.perf_counter()
    if args.compile_only or args.compile:
        seed_of = __import__("harness.methods", fromlist=["item_seed"]).item_seed
        convs, params = sampling(bench, all_items[: sizes[-1]], run, seed_of)
        figures["f"] = compile_crossover(model, run, convs, params)
        machine1, own1 = cpu_seconds()
        figures["f"]["others_cores"] = ((machine1 - machine0) - (own1 - own0)) / (
            time.perf_counter() - wall0
        )
        print_compile(figures["f"])
        print(f"other processes kept {figures['f']['others_cores']:.2f} CPU cores busy meanwhile")
    if args.compile_only:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {args.out}")
        return

    engine, cold_s = timed(lambda: make_engine(model, run.engine, run.seed))
    figures |= {
        "dtype": engine.dtype,
        "load_cold_s": cold_s,
        "rss_loaded_gib": rss_gib(),
        "gpu_loaded_gib": gpu_gib(),
    }
    core = Core(run, engine)
    engine.llm.chat(
        [[{"role": "user", "content": "Hi"}]], bare_params([Sampling(max_tokens=4)]), use_tqdm=False
    )  # first-call costs out of every figure

    # (b) batched vs per-question loop, both sides, at each size
    figures["b"] = []
    for size in sizes:
        row, warm = schedule(core, engine, bench, all_items[:size], sides, args.max_tokens)
        figures["b"].append(row)
        if warm:
            figures["c"] = warm
        print(f"(b) {size} items: {row}", flush=True)

    # (a) and (d) on the largest size: bare vs harness proposals, raw decode at the same batch
    convs, params = sampling(bench, all_items[: sizes[-1]], run, core.item_seed)
    chat = engine.llm.chat
    bare, bare_s = timed(
        lambda: chat(convs, bare_params(params), chat_template=engine.chat_template, use_tqdm=False)
    )
    with tempfile.TemporaryDirectory() as tmp:
        stage_tokens, stage_s = timed(lambda: core.stage(tmp, convs, params))
    raw, raw_s = timed(
        lambda: chat(
            convs,
            bare_params(params, ignore_eos=True),
            chat_template=engine.chat_template,
            use_tqdm=False,
        )
    )
    sequences = sum(p.n for p in params)
    stage_tps, bare_tps = stage_tokens / stage_s, bare_tokens(bare) / bare_s
    raw_tps = bare_tokens(raw) / raw_s
    figures["a"] = {
        "bare_s": bare_s,
        "bare_tokens_per_s": bare_tps,
        "harness_s": stage_s,
        "harness_tokens_per_s": stage_tps,
        "ratio": stage_tps / bare_tps,
    }
    figures["d"] = {
        "sequences": sequences,
        "max_num_seqs": run.engine.kwargs.get("max_num_seqs"),
        "raw_tokens_per_s": raw_tps,
        "stage_tokens_per_s": stage_tps,
        "ratio": stage_tps / raw_tps,
        "mean_stage_length": stage_tokens / sequences,
    }

    # (e) roofline of this machine for this model
    params_n = parameter_count(str(engine.llm.llm_engine.model_config.model))
    bytes_per = 2 if engine.dtype in ("bfloat16", "float16", "half") else 4
    bw, tflops = memory_bandwidth_gbs(device), matmul_tflops(device, engine.dtype)
    memory_bound = sequences * bw * 1e9 / (params_n * bytes_per)  # tokens/s at this batch
    compute_bound = tflops * 1e12 / (2 * params_n)
    bound = min(memory_bound, compute_bound)
    figures["e"] = {
        "parameters": params_n,
        "bytes_per_parameter": bytes_per,
        "bandwidth_gbs": bw,
        "matmul_tflops": tflops,
        "batch": sequences,
        "memory_bound_tokens_per_s": memory_bound,
        "compute_bound_tokens_per_s": compute_bound,
        "bound_tokens_per_s": bound,
        "raw_ratio": raw_tps / bound,
        "stage_ratio": stage_tps / bound,
    }

    engine.close()
    figures |= {"rss_released_gib": rss_gib(), "gpu_released_gib": gpu_gib()}
    again, warm_load_s = timed(lambda: make_engine(model, run.engine, run.seed))
    figures["c"] = figures.get("c", {}) | {"load_cold_s": cold_s, "load_again_s": warm_load_s}
    figures |= {"rss_reloaded_gib": rss_gib(), "gpu_reloaded_gib": gpu_gib()}
    again.close()
    machine1, own1 = cpu_seconds()
    # CPU cores other processes kept busy meanwhile: figures are only comparable near 0
    figures["others_cores"] = ((machine1 - machine0) - (own1 - own0)) / (
        time.perf_counter() - wall0
    )
    figures["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print_table(figures)
    if "f" in figures:
        print_compile(figures["f"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {args.out}")


def print_table(f: dict) -> None:
    a, c, d, e = f["a"], f["c"], f["d"], f["e"]
    print(
        f"\n{f['model']} ({f['engine']}, {f['dtype']}), k={f['k']}, max_tokens "
        f"{f['max_tokens']}, overrides {f['overrides'] or 'none'}"
    )
    print(
        f"(a) proposal stage    bare LLM.chat {a['bare_tokens_per_s']:8.1f} tok/s | harness "
        f"{a['harness_tokens_per_s']:8.1f} tok/s | ratio {a['ratio']:.2f}"
    )
    for row in f["b"]:
        parts = []
        for side in ("harness", "bare"):
            if f"{side}_loop_s" in row:
                parts.append(
                    f"{side} loop {row[f'{side}_loop_s']:7.1f} s / batched "
                    f"{row[f'{side}_batched_s']:6.1f} s = {row[f'{side}_speedup']:.2f}x"
                )
        print(f"(b) Self-MoA {row['items']:3d} items  " + " | ".join(parts))
    if "cold_s" in c:
        print(
            f"(c) warm store        cold {c['cold_s']:.1f} s, made {c['cold_made']} | warm "
            f"{c['warm_s']:.2f} s, made {c['warm_made']}, found {c['warm_found']}"
        )
    print(f"(c) model load        cold {c['load_cold_s']:.1f} s | again {c['load_again_s']:.1f} s")
    print(
        f"(d) {d['sequences']} sequences (max_num_seqs {d.get('max_num_seqs')}): raw decode "
        f"{d['raw_tokens_per_s']:8.1f} tok/s | "
        f"stage {d['stage_tokens_per_s']:8.1f} tok/s | ratio {d['ratio']:.2f} (mean length "
        f"{d['mean_stage_length']:.0f} of {f['max_tokens']})"
    )
    print(
        f"(e) roofline          {e['parameters'] / 1e6:.0f}M params x {e['bytes_per_parameter']} B,"
        f" {e['bandwidth_gbs']:.1f} GB/s, {e['matmul_tflops']:.2f} TFLOP/s -> bound "
        f"{e['bound_tokens_per_s']:.0f} tok/s (memory {e['memory_bound_tokens_per_s']:.0f}, "
        f"compute {e['compute_bound_tokens_per_s']:.0f}) | raw/bound {e['raw_ratio']:.2f}, "
        f"stage/bound {e['stage_ratio']:.2f}"
    )
    mem = (
        f"memory (RSS GiB)     before {f['rss_before_gib']:.2f} | loaded "
        f"{f['rss_loaded_gib']:.2f} | released {f['rss_released_gib']:.2f} | reloaded "
        f"{f['rss_reloaded_gib']:.2f} | peak {f['peak_rss_gib']:.2f}"
    )
    if f.get("gpu_loaded_gib") is not None:
        mem += (
            f"\nmemory (GPU GiB)     before {f['gpu_before_gib']:.2f} | loaded "
            f"{f['gpu_loaded_gib']:.2f} | released {f['gpu_released_gib']:.2f} | "
            f"reloaded {f['gpu_reloaded_gib']:.2f}"
        )
    print(mem)
    print(f"other processes kept {f['others_cores']:.2f} CPU cores busy during the bench")


if __name__ == "__main__":
    main()
