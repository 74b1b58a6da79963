"""Console output: progress lines (stage i of n, an ETA only once it means something) and the
console filter that keeps vLLM's noise in run.log only."""

import logging

from harness import progress
from harness.logs import REPORT, ConsoleFilter


def record(name: str, level: int) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, "msg", None, None)


def test_first_progress_line_has_no_eta_and_names_the_stage(monkeypatch, caplog):
    monkeypatch.setenv("HARNESS_PROGRESS_S", "3600")
    caplog.set_level(logging.INFO, logger="harness.progress")
    progress.plan_stages(3)
    progress.next_stage()
    bar = progress.Progress(total=100, desc="Processed prompts")
    bar.update(1)
    bar.close()
    first, last = (r.getMessage() for r in caplog.records)
    assert "ETA ?" in first and first.endswith("| stage 1 of 3")
    assert last.startswith("Processed prompts: 1/100 [")


def test_stages_are_counted_per_study_and_unknown_totals_say_so():
    progress.plan_stages(None)
    progress.next_stage("propose on m")
    for _ in range(2):  # vLLM draws a rendering bar and a generation bar for one stage
        progress.Progress(total=1, disable=True).close()
    assert progress.stage_label() == "stage 1 (propose on m)"
    progress.next_stage("aggregate on m")
    assert progress.stage_label() == "stage 2 (aggregate on m)"
    progress.plan_stages(None)
    assert progress.stage_label() == "stage 0"


def test_eta_needs_a_tenth_of_the_requests_and_some_seconds():
    assert not progress.eta_known(0, 100, 60)
    assert not progress.eta_known(20, 100, 1)
    assert progress.eta_known(10, 100, 10)
    assert not progress.eta_known(5, None, 10)


def test_console_filter_drops_vllm_warnings_and_reports_but_keeps_errors():
    f = ConsoleFilter()
    assert not f.filter(record("vllm.config", logging.WARNING))
    assert not f.filter(record("py.warnings", logging.WARNING))
    assert not f.filter(record(REPORT, logging.INFO))
    assert f.filter(record("vllm.engine", logging.ERROR))
    assert f.filter(record("harness.run", logging.WARNING))
    assert f.filter(record("vllmx", logging.INFO))


def test_run_log_keeps_one_line_per_weight_loading_episode_not_one_per_tensor():
    from harness.logs import WeightLoadFilter

    def tensor(name: str) -> logging.LogRecord:
        msg = "Attempted to load weight %s with dtype torch.float32 into parameter with dtype bf16"
        return logging.LogRecord(
            "vllm.model_executor.models.utils", logging.WARNING, __file__, 1, msg, (name,), None
        )

    f = WeightLoadFilter()
    first_load = [f.filter(tensor(f"layers.{i}.weight")) for i in range(99)]
    between = f.filter(record("harness.generate", logging.INFO))
    second_load = [f.filter(tensor(f"layers.{i}.weight")) for i in range(99)]
    assert sum(first_load) == 1 and first_load[0] and between and sum(second_load) == 1
    kept = tensor("lm_head.weight")
    WeightLoadFilter().filter(kept)
    assert "lm_head.weight" in kept.getMessage() and "one line per load" in kept.getMessage()


def test_the_run_log_handler_carries_the_weight_filter():
    from hydra import compose, initialize_config_dir

    from harness.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", return_hydra_config=True)
    handlers = cfg.hydra.job_logging.handlers
    assert list(handlers.file.filters) == ["weights"]
    assert list(handlers.console.filters) == ["console"]
    assert cfg.hydra.job_logging.filters.weights["()"] == "harness.logs.WeightLoadFilter"


def test_the_run_eta_follows_the_stage_once_a_stage_has_generated():
    progress.plan_stages(3, budget=1000)
    progress.next_stage("propose on m")
    assert progress.stage_label() == "stage 1 of 3 (propose on m)"  # nothing measured yet
    progress.stage_done(budget=600, made=600, seconds=60.0)  # 0.1 s per budgeted token
    progress.next_stage("aggregate on m")
    assert progress.stage_label() == "stage 2 of 3, run ETA 00:40 (aggregate on m)"
    progress.stage_done(budget=100, made=0, seconds=0.1)  # served from the store: budget spent
    progress.next_stage("aggregate-2 on m")
    assert progress.stage_label() == "stage 3 of 3, run ETA 00:30 (aggregate-2 on m)"


def test_planned_stages_are_the_stages_a_study_runs(tmp_path, data_dir):
    """every_method_cpu with the replay engine: 2 proposal stages, 2 aggregation rounds."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from harness.plan import checked, compose, planned_stages

    root = Path(__file__).resolve().parent.parent
    overrides = ["experiment=every_method_cpu", "engine=replay", f"benchmark.data_dir={data_dir}"]
    proc = subprocess.run(
        [sys.executable, "-m", "harness.run", *overrides, "logger.mode=disabled",
         f"store_dir={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=root, capture_output=True, text=True, timeout=300,
        env=os.environ | {"PYTHONPATH": str(root)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    stages = json.loads((tmp_path / "run" / "metrics.json").read_text())["stages"]
    _, confs = checked(compose(*overrides))
    assert len(stages) == planned_stages(confs) == 4


def test_a_terminal_bar_names_its_stage_without_nested_brackets(monkeypatch):
    import io
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    progress.plan_stages(2)
    progress.next_stage("propose on m")
    bar = progress.Progress(total=10, desc="Processed prompts", file=io.StringIO())
    assert bar.desc == "Processed prompts | stage 1 of 2 (propose on m)"
    bar.close()
