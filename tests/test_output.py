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
