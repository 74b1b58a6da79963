"""Entry point: run one study (a method plus the greedy baseline) on a benchmark.

Usage:
    python -m harness.run                                     # default study (conf/config.yaml)
    python -m harness.run method=self_moa method.k=6 benchmark.limit=10
    python -m harness.run method=single model=smollm2-135m-instruct
    python -m harness.run method.aggregator=qwen2.5-coder-0.5b-instruct model=smollm2-135m-instruct
    python -m harness.run experiment=smoke logger.mode=disabled
    python -m harness.run engine=gpu model=qwen2-7b-instruct  # on a CUDA machine with `vllm`
    python -m harness.run -m sweep=k_scaling launcher=slurm   # one SLURM job per sweep point

Prints a summary table and the run directory (runs/<date>/<time>_<method>_<model>/).
SIGTERM or SIGUSR1 (SLURM's preemption and time-limit warnings) stop the run cleanly: what is
stored stays stored, the W&B run is marked preempting, and the same command (or the requeued
job, slurm/study.sbatch) continues where it stopped. Under submitit, submitit owns the signals
and requeues the point itself.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from harness import benchmarks
from harness.cluster import check_job
from harness.config import CONF_DIR, ConfigError, RunConfig
from harness.environment import check_environment
from harness.errors import one_line
from harness.generate import Generator, ModelSlot, fault_point
from harness.logs import report
from harness.methods import Job
from harness.metrics import stage_table, summarize, summary_table, truncation_warnings
from harness.models import prepare_models
from harness.multirun import sweep_group  # also registers conf/config.yaml's point resolver
from harness.plan import checked_run, configurations, planned_generations
from harness.progress import plan_stages
from harness.rundir import RunDir
from harness.store import Store
from harness.study import execute
from harness.tracking import make_tracker

log = logging.getLogger(__name__)


class Preempted(BaseException):  # noqa: N818 - like KeyboardInterrupt, not an error of the run
    """Raised in the main thread by SIGTERM/SIGUSR1, so that `finally` blocks close everything."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def raise_preempted(signum: int, frame) -> None:
    raise Preempted(signum)


def install_signal_handlers() -> None:
    """SIGTERM/SIGUSR1 raise Preempted, unless submitit runs this job (it handles them itself)."""
    if os.environ.get("SUBMITIT_EXECUTOR"):
        return
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, raise_preempted)


def study(run: RunConfig) -> dict:
    """Load items, run every configuration stage by stage, score, write the run directory."""
    from harness.engines.factory import nondeterministic, probe

    rundir = RunDir(run.run_dir)
    rundir.write_config(run)
    bench = benchmarks.get(run.benchmark)
    items = bench.load()
    log.info(
        "%s: %d items from %s (%d malformed skipped)",
        bench.name,
        len(items),
        bench.report.source,
        len(bench.report.skipped),
    )
    if not items:
        raise ConfigError(
            f"benchmark {bench.name} has no items (benchmark.limit={run.benchmark.limit})"
        )
    bench.check()
    confs = configurations(run)
    planned = planned_generations(confs, len(items), bench.turns)
    plan_line = (
        f"planned: {len(confs)} configurations on {len(items)} items: at most "
        f"{planned['proposals']} proposals and {planned['aggregations']} aggregations, "
        f"{planned['tokens']} tokens (before the store serves what it has)"
    )
    if run.engine.tokens_per_s_hint > 0:
        minutes = planned["tokens"] / run.engine.tokens_per_s_hint / 60
        plan_line += f"; at most ~{minutes:.0f} min at {run.engine.tokens_per_s_hint:g} tokens/s"
    report(plan_line)
    plan_stages(None)  # progress lines count this study's stages (a multirun shares a process)
    what = f"study{len(confs)}" if run.configurations else confs[-1].label
    name = f"{what}-{run.model.name}-{bench.name}"
    tracker = make_tracker(run, name)
    exit_code, preempted = 1, False
    try:
        prepare_s = prepare_models(run.models)
        probe(run.models, run.engine)  # served models: every URL answers and lists the model
        slot = ModelSlot(run.models, run.engine, run.seed)
        try:
            store = Store(run.store_dir)
            log.info("store %s: %s", run.store_dir, store.summary())
            gen = Generator(slot, store, run.seed)
            records = execute(confs, items, bench, gen, run.benchmark.judge)
            stages = gen.stages
        finally:
            slot.close()
        rundir.write_records(records)
        fault_point("write")
        summary = summarize(records, bench.name, bench.metric)
        metrics = {
            "benchmark": bench.name,
            "metric": f"{bench.name}/{bench.metric}",
            "items": len(items),
            "malformed_skipped": bench.report.skipped,
            "score_outcomes": dict(bench.score_outcomes),
            "configurations": summary,
            "stages": [asdict(s) | {"tokens_per_s": s.tokens_per_s} for s in stages],
            "time/prepare_s": prepare_s,
            "time/load_s": sum(s.load_s for s in stages),
            "time/generate_s": sum(s.gen_s for s in stages),
            "store/found": sum(s.found for s in stages),
            "store/made": sum(s.made for s in stages),
            "store/skipped": {
                "torn": store.torn,
                "invalid": store.invalid,
                "conflicts": store.conflicts,
            },
            "truncated": {s.stage + "/" + s.model: s.truncated for s in stages},
            "memory/peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "engine/nondeterministic_models": nondeterministic(run.models, run.engine),
        }
        rundir.write_metrics(metrics)

        # one method: its metrics under plain keys, the baselines' under `baseline/`;
        # a study: every configuration's under `<label>/`
        def prefix(label: str) -> str:
            if run.configurations:
                return f"{label}/"
            return "" if label == confs[-1].label else "baseline/"

        flat = {
            prefix(label) + k: v
            for label, m in summary.items()
            for k, v in m.items()
            if k not in ("outcomes", "events", "method")
        }
        flat |= {
            k: v
            for k, v in metrics.items()
            if k.startswith(("time/", "memory/", "store/")) and not isinstance(v, dict)
        }
        tracker.log_summary(flat)
        tracker.log_results(summary, bench.name, bench.metric)
        tracker.log_items(records)
        exit_code = 0
    except (Preempted, SystemExit):  # SystemExit: submitit's requeue after its USR2
        preempted = True
        raise
    finally:
        tracker.finish(exit_code, preempted)
    cut = truncation_warnings(metrics["stages"], [t for c in confs for t in c.method.token_caps()])
    for line in cut:
        log.warning(line)
    warnings = "".join(f"warning: {line}\n" for line in cut)
    report(
        f"\n{bench.name}: {len(items)} items, model {run.model.name}\n\n"
        + summary_table(summary, bench.name, bench.metric)
        + "\n\n"
        + stage_table(metrics["stages"])
        + "\n\n"
        + warnings
        + f"store {run.store_dir}: found {metrics['store/found']} generations, "
        f"made {metrics['store/made']}\n"
        f"peak memory {metrics['memory/peak_rss_gib']:.2f} GiB; "
        f"load {metrics['time/load_s']:.1f} s; generate {metrics['time/generate_s']:.1f} s\n"
        f"run directory: {Path(run.run_dir).resolve()}"
    )
    return metrics


def propose_phase(run: RunConfig) -> dict:
    """Phase 1 of the two-phase SLURM pattern: only the proposal stages, into the store."""
    from harness.engines.factory import probe

    bench = benchmarks.get(run.benchmark)
    items = bench.load()
    confs = configurations(run)
    models = None if run.phase_model is None else {run.phase_model}
    prepare_models(run.models)
    probe(run.models, run.engine)
    slot = ModelSlot(run.models, run.engine, run.seed)
    gen = Generator(slot, Store(run.store_dir), run.seed)
    try:
        gen.propose([Job(c, i, bench.messages(i), run.seed) for c in confs for i in items], models)
    finally:
        slot.close()
    stages = gen.stages
    metrics = {
        "benchmark": bench.name,
        "items": len(items),
        "phase": "propose",
        "stages": [asdict(s) | {"tokens_per_s": s.tokens_per_s} for s in stages],
    }
    RunDir(run.run_dir).write_metrics(metrics)
    print(stage_table(metrics["stages"]))
    print(f"store {run.store_dir}: proposals of {sorted(models or run.models)} stored")
    return metrics


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    install_signal_handlers()
    start = time.time()
    try:
        check_environment()
        hydra_cfg = HydraConfig.get()
        run = checked_run(cfg, hydra_cfg.runtime.output_dir)
        os.environ.setdefault("HARNESS_CACHE_DIR", run.paths.cache)  # harness.models, W&B
        if run.logger.group is None:
            run.logger.group = sweep_group(hydra_cfg)
        check_job(run.engine.kwargs)  # SLURM's GPUs match tensor_parallel_size
        if run.phase == "propose":
            propose_phase(run)
        else:
            study(run)
    except ConfigError as e:
        print(one_line(e), file=sys.stderr)
        sys.exit(2)
    except Preempted as e:
        log.warning(
            "stopped by %s after %.0f s; every finished stage is in the store, and running the "
            "same command (or the requeued job) continues from there",
            e,
            time.time() - start,
        )
        sys.exit(128 + e.signum)


if __name__ == "__main__":
    main()
