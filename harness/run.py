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
import signal
import sys
import time

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from harness.cluster import check_job
from harness.config import CONF_DIR, ConfigError, RunConfig
from harness.dryrun import dry_run
from harness.engines.factory import nondeterministic as nondeterministic_models
from harness.engines.factory import prepare_weights, probe
from harness.environment import check_environment
from harness.errors import one_line
from harness.generate import fault_point
from harness.logs import report
from harness.metrics import study_metrics, truncation_warnings
from harness.multirun import (
    point_failed,
    sweep_group,
)  # also registers conf/config.yaml's point resolver
from harness.plan import (
    checked_run,
    configurations,
    load_items,
    plan_line,
    planned_generations,
    planned_stages,
)
from harness.progress import plan_stages
from harness.rundir import RunDir
from harness.study import propose_only, run_study
from harness.summary import StudyMetrics
from harness.tables import stage_table, study_report
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
    """SIGINT (Ctrl-C), SIGTERM and SIGUSR1 raise Preempted: one line, exit 128 + the signal.
    Under submitit only SIGINT (submitit handles the others itself); an ignored one stays so."""
    sigs = [signal.SIGINT]
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        sigs += [signal.SIGTERM, signal.SIGUSR1]
    for sig in sigs:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, raise_preempted)


def study(run: RunConfig) -> StudyMetrics:
    """Load items, run every configuration stage by stage, score, write the run directory."""
    rundir = RunDir(run.run_dir)
    rundir.write_config(run)
    bench, items = load_items(run)
    confs = configurations(run)
    report(plan_line(run, confs, len(items), bench.turns))
    # progress lines count this study's stages (a multirun shares a process) and, after the first
    # stage, estimate the whole run from the planned token budget
    budget = planned_generations(confs, len(items), bench.turns)["tokens"]
    plan_stages(planned_stages(confs, bench.turns, bench.judged), budget)
    tracker = make_tracker(run, [c.label for c in confs], bench.name)
    exit_code, preempted = 1, False
    try:
        prepare_s = prepare_weights(run.models, run.engine)
        probe(run.models, run.engine)  # served models: every URL answers and lists the model
        records, stages, store = run_study(run, confs, items, bench)
        rundir.write_records(records)
        fault_point("write")
        nondeterministic = nondeterministic_models(run.models, run.engine)
        metrics = study_metrics(
            records, bench, len(items), stages, store, prepare_s, nondeterministic
        )
        rundir.write_metrics(metrics.to_json())
        tracker.log_study(metrics, records)
        exit_code = 0
    except (Preempted, SystemExit):  # SystemExit: submitit's requeue after its USR2
        preempted = True
        raise
    finally:
        tracker.finish(exit_code, preempted)
    cut = truncation_warnings(metrics.stages, [t for c in confs for t in c.method.token_caps()])
    for line in cut:
        log.warning(line)
    report(study_report(metrics, run.model.name, cut, run.store_dir, run.run_dir))
    return metrics


def propose_phase(run: RunConfig) -> dict:
    """Phase 1 of the two-phase SLURM pattern: only the proposal stages, into the store."""
    bench, items = load_items(run, check=False)
    confs = configurations(run)
    prepare_weights(run.models, run.engine)
    probe(run.models, run.engine)
    stages = propose_only(run, confs, items, bench)
    metrics = {
        "benchmark": bench.name,
        "items": len(items),
        "phase": "propose",
        "stages": [s.to_json() for s in stages],
    }
    RunDir(run.run_dir).write_metrics(metrics)
    print(stage_table(stages))
    models = [run.phase_model] if run.phase_model is not None else sorted(run.models)
    print(f"store {run.store_dir}: proposals of {models} stored")
    return metrics


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    install_signal_handlers()
    start, store = time.time(), "the store"
    hydra_cfg = HydraConfig.get()
    try:
        check_environment()
        run = checked_run(cfg, hydra_cfg.runtime.output_dir)
        store = f"the store ({run.store_dir})"
        os.environ.setdefault("HARNESS_CACHE_DIR", run.paths.cache)  # harness.models, W&B
        if run.logger.group is None:
            run.logger.group = sweep_group(hydra_cfg)
        check_job(run.engine.kwargs)  # SLURM's GPUs match tensor_parallel_size
        if run.dry_run:
            dry_run(run)  # the study's needs, loading no model; one line when one cannot fit
        elif run.phase == "propose":
            propose_phase(run)
        else:
            study(run)
    except Preempted as e:
        log.warning(
            "stopped by %s after %.0f s; every generation made so far is in %s, and running "
            "the same command (or the requeued job) continues from there",
            e,
            time.time() - start,
            store,
        )
        sys.exit(128 + e.signum)
    except Exception as e:
        if point_failed(hydra_cfg, e):  # a sweep point: one line, recorded; the others run
            return
        if not isinstance(e, ConfigError):
            raise
        print(one_line(e), file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
