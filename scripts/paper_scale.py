"""The harness's own cost on the full Table 3 study, with the replay engine (no model, no GPU).

Runs `experiment=paper_table3` (MMLU-Redux, CRUXEval, MATH-500; 21 configurations each) through
the real core, `harness.run.study` once per benchmark as the multirun does, with `engine=replay`
(harness.engines.replay: instant texts of realistic length and answer form) and the local data,
then the analysis (`harness.analyze`: Vendi embeddings, fits, plots, W&B offline). Then a warm
rerun of the three studies (every generation served from the store) and the analysis alone
(embeddings cached). The analysis runs in a process of its own, as `python -m harness.analyze`
does. Prints, per phase: wall seconds, peak RSS so far (the harness's own, no model: the studies'
process, and the analysis' for its phases), store size on disk, and microseconds of harness
time per generation; then the GPU generation time projected for the same generated tokens at
--rate tokens/s and the ratio of harness time to it. Phases are timed by wrapping the core's own
functions (no copy of the pipeline): store start-up, each stage's store traffic (stage wall
minus engine time), scoring per benchmark, summary metrics, records, W&B, analysis.

Usage:
    python scripts/paper_scale.py                         # every item (~6,600), ~270k generations
    python scripts/paper_scale.py --fraction 0.1          # 10% of each benchmark's items
    python scripts/paper_scale.py --fraction 0.02 --out /tmp/ps --rate 10000 --json figures.json
Growth: run two fractions and divide (the note in issue 21 does). --keep leaves the store and run
directories in --out (default: a fresh temporary directory, removed at the end).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCHMARKS = ("mmlu_redux", "cruxeval", "math500")
EMBED_SAMPLE = 1500  # --embed-sample: sequences embedded for real in one pass
EMBEDDINGS = "analysis: embeddings (MiniLM, this machine's CPU)"
EMBEDDINGS_PROJECTED = "analysis: embeddings past --embed-sample (PROJECTED at the rate above)"
ANALYSIS = "analysis: the rest (records, measures, fits, plots, W&B)"


def rss_gib() -> float:
    """This process's peak RSS. Linux's VmHWM, not getrusage's ru_maxrss: a process started by
    fork and exec (the analysis' spawned process) inherits its parent's ru_maxrss."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) / 2**20  # kB
    except (OSError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def cpu_s() -> float:
    """CPU seconds of this process and its finished children (sandbox runs): on a shared
    machine the wall time depends on the neighbours, the CPU time much less."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


class Clock:
    """Seconds per phase, accumulated by wrappers around the core's functions (`NOW` is the
    clock of the pass being measured; the wrappers are installed once)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)  # this process's and its children's
        self.counts: dict[str, int] = defaultdict(int)
        self.rss: dict[str, float] = {}
        self.active: list[str] = []
        self.engine_s = 0.0  # the replay engine's own time (what a GPU would spend)
        self.engine_cpu = 0.0  # its CPU seconds (under contention far below its wall seconds)
        self.embedded = [0, 0]  # sequences, word pieces given to the embedding model
        self.stand_in = [0, 0]  # sequences, word pieces past --embed-sample (not embedded)
        self.child_rss = 0.0  # peak RSS of the analysis' own process

    def add(self, label: str, seconds: float, cpu: float = 0.0) -> None:
        self.seconds[label] += seconds
        self.cpu[label] += cpu
        self.counts[label] += 1
        self.rss[label] = rss_gib()


NOW = Clock()
INSTALLED = False


def wrap(owner, name: str, label: str) -> None:
    """Time `owner.name` into phase `label` of the current clock (nested calls: the outer)."""
    original = getattr(owner, name)
    if getattr(original, "_paper_scale", False):
        return

    @functools.wraps(original)
    def timed(*args, **kwargs):
        clock = NOW
        if clock.active:  # nested: the outer phase keeps the time
            return original(*args, **kwargs)
        clock.active.append(label)
        start, cpu = time.perf_counter(), cpu_s()
        try:
            return original(*args, **kwargs)
        finally:
            clock.add(label, time.perf_counter() - start, cpu_s() - cpu)
            clock.active.pop()

    timed._paper_scale = True  # type: ignore[attr-defined]
    setattr(owner, name, timed)


def instrument() -> None:
    """Wrap the core's phases (classes and module attributes the study path calls), once."""
    global INSTALLED
    if INSTALLED:
        return
    INSTALLED = True
    import harness.run as run_mod
    from harness import benchmarks
    from harness.generate import Generator
    from harness.rundir import RunDir
    from harness.store import Store
    from harness.tracking import WandbTracker

    current = {"bench": "?"}

    wrap(Store, "__init__", "store start-up (read every shard)")
    from harness.engines.replay import ReplayEngine

    original_chat = ReplayEngine.chat

    @functools.wraps(original_chat)
    def chat(self, *args, **kwargs):
        cpu = time.process_time()  # finer than os.times; the replay engine starts no children
        try:
            return original_chat(self, *args, **kwargs)
        finally:
            NOW.engine_cpu += time.process_time() - cpu

    ReplayEngine.chat = chat  # type: ignore[method-assign]
    original_stage = Generator.stage

    @functools.wraps(original_stage)
    def stage(self, stage_name, model, requests):
        before = len(self.stages)
        start, cpu = time.perf_counter(), cpu_s()
        engine_cpu = NOW.engine_cpu
        out = original_stage(self, stage_name, model, requests)
        wall, cpu = time.perf_counter() - start, cpu_s() - cpu
        engine = sum(s.gen_s + s.load_s for s in self.stages[before:])
        kind = stage_name.split("-")[0]
        label = f"{current['bench']}: {kind} stage store traffic"
        NOW.add(label, wall - engine, cpu - (NOW.engine_cpu - engine_cpu))
        NOW.engine_s += engine
        return out

    Generator.stage = stage  # type: ignore[method-assign]

    original_get = benchmarks.get

    def get(cfg):
        bench = original_get(cfg)
        current["bench"] = bench.name
        wrap(bench, "load", "planning (load items, configurations)")
        wrap(bench, "score", f"{bench.name}: scoring")
        wrap(bench, "extract_answer", f"{bench.name}: scoring")
        return bench

    benchmarks.get = get  # harness.plan.load_items calls benchmarks.get(...)
    wrap(run_mod, "configurations", "planning (load items, configurations)")
    wrap(run_mod, "plan_line", "planning (load items, configurations)")
    wrap(run_mod, "study_metrics", "summary metrics")
    from harness.analysis.diversity import Embedder

    original_encode = Embedder.encode

    @functools.wraps(original_encode)
    def encode(self, texts):
        """The real model on the first --embed-sample sequences (its rate measured), stand-in
        unit vectors for the rest (their word pieces counted, their time projected)."""
        model = self.model_()
        counts = [  # tokenized in batches, as the model does: the ids of all at once take GiBs
            min(len(ids), model.max_seq_length)
            for start in range(0, len(texts), 1024)
            for ids in model.tokenizer(texts[start : start + 1024], add_special_tokens=True)[
                "input_ids"
            ]
        ]
        real = max(0, min(len(texts), EMBED_SAMPLE - NOW.embedded[0]))
        NOW.embedded[0] += real
        NOW.embedded[1] += sum(counts[:real])
        NOW.stand_in[0] += len(texts) - real
        NOW.stand_in[1] += sum(counts[real:])
        out = [original_encode(self, texts[:real])] if real else []
        if real < len(texts):
            rng = np.random.default_rng(len(texts))
            rest = rng.standard_normal((len(texts) - real, 384)).astype(np.float32)
            out.append(rest / np.linalg.norm(rest, axis=1, keepdims=True))
        return np.concatenate(out)

    Embedder.encode = encode  # type: ignore[method-assign]
    wrap(Embedder, "encode", EMBEDDINGS)
    wrap(RunDir, "write_records", "records (records.jsonl)")
    wrap(run_mod, "make_tracker", "W&B offline (init, tables, finish)")
    for name in ("log_study", "finish"):
        wrap(WandbTracker, name, "W&B offline (init, tables, finish)")


def full_counts(data_dir: str) -> dict[str, int]:
    from harness import benchmarks

    return {
        b: len(benchmarks.get(benchmarks.knobs(name=b, data_dir=data_dir, limit=None)).load())
        for b in BENCHMARKS
    }


@contextlib.contextmanager
def quiet(log: Path):
    """The core's printed tables and reports go to `log` (appended), not to the console."""
    with log.open("a") as f, contextlib.redirect_stdout(f):
        yield


def studies(limits: dict[str, int], out: Path, sweep: Path) -> list[dict]:
    """The three studies of experiment=paper_table3, one `harness.run.study` each."""
    import harness.run as run_mod
    from harness.plan import checked_run, compose

    metrics = []
    for i, bench in enumerate(BENCHMARKS):
        cfg = compose(
            "experiment=paper_table3",
            "engine=replay",
            f"benchmark={bench}",
            f"benchmark.limit={limits[bench]}",
            "logger.mode=offline",
            f"store_dir={out / 'store'}",
        )
        run = checked_run(cfg, str(sweep / f"{i}_benchmark={bench}"))
        metrics.append(run_mod.study(run))
    return metrics


def analysis(sweep: Path, cache: Path, log: Path) -> dict:
    """`harness.analyze` in a fresh process, as a user runs it, so its peak RSS is its own, not
    the studies' too: its wall and CPU seconds, its clock's phases, embedding counts and peak."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(analysis_child, (str(sweep), str(cache), str(log), EMBED_SAMPLE))


def analysis_child(sweep: str, cache: str, log: str, embed_sample: int) -> dict:
    global NOW
    globals()["EMBED_SAMPLE"] = embed_sample
    NOW = clock = Clock()
    instrument()
    from harness import analyze

    start, cpu = time.perf_counter(), cpu_s()
    with quiet(Path(log)):
        code = analyze.main([sweep, "--cache-dir", cache, "--bootstrap", "200"])
    if code != 0:
        raise SystemExit(f"analysis failed with exit status {code}")
    return {"wall": time.perf_counter() - start, "cpu": cpu_s() - cpu, "rss": rss_gib(),
            "seconds": dict(clock.seconds), "cpus": dict(clock.cpu),
            "embedded": clock.embedded, "stand_in": clock.stand_in}  # fmt: skip


def table(rows: list[tuple], header: tuple) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths, strict=True)))  # fmt: skip
    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows)])


def measure(args, out: Path, limits: dict[str, int], warm: bool, name: str) -> dict:
    """One pass of the three studies (cold or warm), its table printed, then the analysis."""
    global NOW
    NOW = clock = Clock()
    instrument()
    sweep = out / ("sweep_warm" if warm else "sweep_cold")
    start, cpu = time.perf_counter(), cpu_s()
    with quiet(out / "study.log"):
        metrics = studies(limits, out, sweep)
    study_s, study_cpu = time.perf_counter() - start, cpu_s() - cpu
    clock.add(
        "other study work (jobs, aggregation prompts, records in memory)",
        study_s - sum(clock.seconds.values()) - clock.engine_s,
        study_cpu - sum(clock.cpu.values()) - clock.engine_cpu,
    )
    r = {
        "study_s": study_s,
        "engine_s": clock.engine_s,
        "engine_cpu_s": clock.engine_cpu,
        "generations": sum(st.made + st.found for m in metrics for st in m.stages),
        "made": sum(st.made for m in metrics for st in m.stages),
        "generated_tokens": sum(st.generated_tokens for m in metrics for st in m.stages),
        "items": {m.keys.benchmark: m.items for m in metrics},
        "records": sum(len(m.configurations) * m.items for m in metrics),
        "store_bytes": disk_bytes(out / "store"),
    }
    if not warm:  # the projection of both passes: the tokens generated once
        args.tokens = r["generated_tokens"]
    snapshot(r, clock)
    print(report(f"{name}, the studies", r, args), flush=True)
    if args.no_analysis:
        return r
    a = analysis(sweep, out / "embeddings", out / "analysis.log")
    embed_s, embed_cpu = a["seconds"].get(EMBEDDINGS, 0.0), a["cpus"].get(EMBEDDINGS, 0.0)
    if embed_s:
        clock.add(EMBEDDINGS, embed_s, embed_cpu)
    clock.add(ANALYSIS, a["wall"] - embed_s, a["cpu"] - embed_cpu)
    clock.embedded, clock.stand_in = a["embedded"], a["stand_in"]
    clock.rss[EMBEDDINGS] = clock.rss[ANALYSIS] = clock.child_rss = a["rss"]
    r["embedded_sequences"], r["embedded_tokens"] = clock.embedded
    r["stand_in_sequences"], r["stand_in_tokens"] = clock.stand_in
    if clock.stand_in[0]:  # the embeddings not computed, at the rate measured on the others
        rate = clock.embedded[1] / max(clock.seconds[EMBEDDINGS], 1e-9)
        cpu_rate = clock.embedded[1] / max(clock.cpu[EMBEDDINGS], 1e-9)
        clock.add(EMBEDDINGS_PROJECTED, clock.stand_in[1] / rate, clock.stand_in[1] / cpu_rate)
        clock.rss[EMBEDDINGS_PROJECTED] = a["rss"]
    snapshot(r, clock)
    print(report(f"{name}, studies and analysis", r, args), flush=True)
    return r


def snapshot(r: dict, clock: Clock) -> None:
    r |= {"phases": dict(clock.seconds), "cpu": dict(clock.cpu), "rss": dict(clock.rss)}
    r["peak_rss_gib"] = max(rss_gib(), clock.child_rss)  # the studies' process, the analysis'


def report(name: str, r: dict, args) -> str:
    gens = max(r["generations"], 1)
    harness_s, harness_cpu = sum(r["phases"].values()), sum(r["cpu"].values())
    rows = [
        (phase, f"{s:.2f}", f"{r['cpu'].get(phase, 0):.2f}", f"{r['rss'].get(phase, 0):.2f}",
         f"{s / gens * 1e6:.0f}")
        for phase, s in sorted(r["phases"].items(), key=lambda kv: -kv[1])
    ]  # fmt: skip
    rows.append(("TOTAL harness", f"{harness_s:.2f}", f"{harness_cpu:.2f}",
                 f"{r['peak_rss_gib']:.2f}", f"{harness_s / gens * 1e6:.0f}"))  # fmt: skip
    text = (
        f"\n== {name}: {r['items']} items, {r['records']} records, {r['generations']} "
        f"generations ({r['made']} made), {r['generated_tokens']} tokens generated; "
        f"replay engine {r['engine_s']:.1f} s ({r['engine_cpu_s']:.1f} s cpu); "
        f"store {r['store_bytes'] / 2**20:.1f} MiB on disk\n"
        + table(rows, ("phase", "wall s", "cpu s", "peak RSS GiB", "us/generation (wall)"))
    )
    gpu_s = args.tokens / args.rate
    if not gpu_s:
        return text
    text += (
        f"\nprojected GPU generation for {args.tokens} tokens at {args.rate:g} tokens/s: "
        f"{gpu_s:.0f} s; harness/GPU = {harness_s / gpu_s:.1%} (wall), "
        f"{harness_cpu / gpu_s:.1%} (cpu)"
    )
    if r.get("embedded_sequences"):
        cpu_emb = r["phases"].get(EMBEDDINGS, 0.0) + r["phases"].get(EMBEDDINGS_PROJECTED, 0.0)
        pieces = r["embedded_tokens"] + r["stand_in_tokens"]
        gpu_emb = pieces / args.embed_rate
        rest = harness_s - cpu_emb + gpu_emb
        text += (
            f"\nembeddings: {r['embedded_sequences'] + r['stand_in_sequences']} sequences, "
            f"{pieces} word pieces ({r['embedded_sequences']} sequences embedded, "
            f"{r['embedded_tokens'] / max(r['phases'].get(EMBEDDINGS, 0.0), 1e-9):.0f} word "
            f"pieces/s here): {cpu_emb:.0f} s on this CPU; on the study's GPU at an ASSUMED "
            f"{args.embed_rate:g} word pieces/s {gpu_emb:.0f} s; harness with the embeddings on "
            f"the GPU / GPU generation = {rest / gpu_s:.1%}"
        )
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fraction", type=float, default=1.0, help="of each benchmark's items")
    parser.add_argument("--rate", type=float, default=10000.0, help="GPU tokens/s to project")
    parser.add_argument("--out", type=Path, default=None, help="working directory (kept)")
    parser.add_argument("--data-dir", default=os.environ.get("HARNESS_DATA_DIR"))
    parser.add_argument("--json", type=Path, default=None, help="write the figures here too")
    parser.add_argument("--no-warm", action="store_true", help="skip the warm rerun")
    parser.add_argument("--no-analysis", action="store_true", help="the studies only")
    parser.add_argument(
        "--embed-rate", type=float, default=200000.0,
        help="word pieces/s of the embedding model on the study's GPU, ASSUMED (not measured "
        "here): projects the embeddings' time there",
    )  # fmt: skip
    parser.add_argument(
        "--embed-sample", type=int, default=EMBED_SAMPLE,
        help="sequences embedded for real per pass (MiniLM on CPU: ~10-25 per CPU second); "
        "the rest get stand-in vectors and their time is projected at the measured rate",
    )  # fmt: skip
    args = parser.parse_args(argv)
    globals()["EMBED_SAMPLE"] = args.embed_sample
    if not 0 < args.fraction <= 1:
        print(f"--fraction must be in (0, 1] (got {args.fraction})", file=sys.stderr)
        return 2
    if args.rate <= 0:
        print(f"--rate must be > 0 (got {args.rate})", file=sys.stderr)
        return 2
    out = args.out or Path(tempfile.mkdtemp(prefix="paper_scale-"))
    out.mkdir(parents=True, exist_ok=True)
    if (out / "store").exists():
        print(f"{out} holds a store from an earlier run; give an empty --out", file=sys.stderr)
        return 2
    os.environ["HARNESS_RUNS_DIR"] = str(out / "runs")
    os.environ.setdefault("HARNESS_CACHE_DIR", str(Path.home() / ".cache" / "harness"))
    os.environ["WANDB_DIR"] = str(out / "wandb")
    os.environ["WANDB_SILENT"] = "true"
    from harness.config import to_run_config
    from harness.plan import compose

    data_dir = args.data_dir or to_run_config(compose()).paths.data
    if data_dir is None:
        print("no local benchmark data (../shared/data or HARNESS_DATA_DIR)", file=sys.stderr)
        return 2
    os.environ["HARNESS_DATA_DIR"] = str(data_dir)
    counts = full_counts(str(data_dir))
    limits = {b: max(1, math.ceil(n * args.fraction)) for b, n in counts.items()}
    print(f"items: {limits} of {counts} (fraction {args.fraction:g}); working in {out}")
    figures = {"fraction": args.fraction, "rate": args.rate, "limits": limits}
    cold = measure(args, out, limits, False, "cold run (everything generated by the replay engine)")
    figures["cold"] = cold
    if not args.no_warm:
        warm = measure(args, out, limits, True, "warm rerun (everything from the store)")
        figures["warm"] = warm
    if not (args.no_warm or args.no_analysis):
        a = analysis(out / "sweep_warm", out / "embeddings", out / "analysis.log")
        figures |= {"analysis_alone_s": a["wall"], "analysis_alone_cpu_s": a["cpu"],
                    "analysis_alone_rss_gib": a["rss"]}  # fmt: skip
        print(
            f"\nanalysis alone (embeddings cached, its own process): {a['wall']:.1f} s wall, "
            f"{a['cpu']:.1f} s cpu, peak RSS {a['rss']:.2f} GiB"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
