"""Bad inputs to analysis, export and logging (issue 24), through the entry points' `main`:
bad lines of records.jsonl counted and skipped with file:line; no readable record, a missing
directory, W&B online without a key: one line, exit 2, no traceback, the run directory unchanged;
run.log that cannot be written: one warning line, the run goes on."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import analyze, export_alpaca
from harness.analysis.measure import read_records
from tests.conftest import write_gsm8k
from tests.test_analyze import study_records, write_run
from tests.test_bad_edges import tree

ROOT = Path(__file__).resolve().parent.parent

GARBAGE = {
    "not UTF-8": b"\xff\xfe caf\xe9\n",
    "not JSON": b'{"configuration": "x", "ite\n',
    "a JSON list": b"[1, 2]\n",
    "an object that is no record": b'{"a": 1}\n',
    "NUL bytes": b"\x00\x00\n",
}


@pytest.mark.parametrize("case", sorted(GARBAGE))
def test_a_bad_line_of_records_is_skipped_and_named_by_file_and_line(tmp_path, case, caplog):
    run = write_run(tmp_path / "run", study_records(items=2))
    path = run / "records.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + GARBAGE[case] + b"".join(lines[1:]))
    with caplog.at_level(logging.WARNING):
        records = read_records(run)
    assert len(records) == len(lines)
    assert f"1 bad lines of records.jsonl skipped: {path}:2: " in caplog.text


def cli(main, argv: list[str], capsys) -> tuple[int, str]:
    status = main(argv)
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return status, out.err


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"", r"no readable record \(the file is empty\)"),
        (b"\n\n", r"no readable record \(the file is empty\)"),
        (
            b"\xff\n[1]\n{",
            r"no readable record \(3 bad lines, the first .*records.jsonl:1: not UTF",
        ),
    ],
)
def test_no_readable_record_is_an_error_with_a_reason(tmp_path, capsys, body, reason):
    run = write_run(tmp_path / "run", study_records(items=2))
    (run / "records.jsonl").write_bytes(body)
    before = tree(run)
    status, err = cli(analyze.main, [str(run), "--no-wandb"], capsys)
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("analysis error: ")
    assert __import__("re").search(reason, err), err
    assert tree(run) == before


def test_analysis_of_a_missing_directory_says_so(tmp_path, capsys):
    status, err = cli(analyze.main, [str(tmp_path / "nope"), "--no-wandb"], capsys)
    assert status == 2 and err.strip() == f"analysis error: {tmp_path / 'nope'}: no such directory"


@pytest.mark.parametrize("what", ["missing", "a file"])
def test_export_of_a_missing_run_directory_says_so(tmp_path, capsys, what):
    path = tmp_path / "run"
    if what == "a file":
        path.write_text("x")
    status, err = cli(export_alpaca.main, [str(path)], capsys)
    reason = "no such run directory" if what == "missing" else "not a directory"
    assert status == 2 and err.strip() == f"export error: {path}: {reason}"


def test_wandb_online_without_a_key_is_refused_before_the_data_loads(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    run = write_run(tmp_path / "run", study_records(items=2))
    (run / "records.jsonl").write_bytes(b"\xff\n")  # would be an error if it were read
    before = tree(run)
    status, err = cli(analyze.main, [str(run), "--wandb-mode", "online"], capsys)
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert "--wandb-mode=online needs a W&B API key: set WANDB_API_KEY" in err
    assert tree(run) == before


def test_a_run_log_that_cannot_be_written_is_one_line_and_the_run_goes_on(tmp_path):
    """run.log on /dev/full (a full disk): one warning, not a traceback per record; exit 0."""
    data = write_gsm8k(tmp_path / "data")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.run",
            "engine=replay",
            "experiment=smoke",
            f"benchmark.data_dir={data}",
            f"store_dir={tmp_path / 'store'}",
            f"hydra.run.dir={tmp_path / 'run'}",
            "logger.mode=disabled",
            "hydra.job_logging.handlers.file.filename=/dev/full",
        ],  # fmt: skip
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Logging error" not in proc.stderr and "Traceback" not in proc.stderr
    warned = [x for x in proc.stderr.splitlines() if "cannot be written" in x]
    assert warned == [
        "warning: /dev/full cannot be written (No space left on device); logging goes on to "
        "the console only"
    ]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["items"] == 3
