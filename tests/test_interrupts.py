"""Ctrl-C and SIGTERM in the middle of a study (issue 24): one line saying what is stored and
that a rerun resumes, exit status 130 / 143, no traceback; a rerun serves what was stored.

A real `python -m harness.run` process with the replay engine (no model: the pipeline itself,
at a size that takes seconds), signalled once its plan line is printed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def big_gsm8k(root: Path, n: int = 1500) -> Path:
    (root / "gsm8k").mkdir(parents=True)
    lines = [
        json.dumps(
            {"question": f"Tom has {i} pens and buys 3. How many?", "answer": f"#### {i + 3}"}
        )
        for i in range(n)
    ]
    (root / "gsm8k" / "test.jsonl").write_text("\n".join(lines) + "\n")
    return root


def start(tmp: Path, data: Path, run: str) -> subprocess.Popen:
    args = [
        sys.executable, "-m", "harness.run", "engine=replay", "method.k=6",
        "model=smollm2-135m-instruct", f"benchmark.data_dir={data}", "benchmark.limit=1500",
        f"store_dir={tmp / 'store'}", f"hydra.run.dir={tmp / run}", "logger.mode=disabled",
    ]  # fmt: skip
    env = os.environ | {"PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def signalled(proc: subprocess.Popen, sig: int, store: Path) -> tuple[str, str]:
    """Send `sig` once the study runs and a stage is in the store; the whole output."""
    seen = []
    for line in proc.stdout:  # the plan line: the study has started
        seen.append(line)
        if line.startswith("planned:"):
            break
    deadline = time.monotonic() + 120
    while not any(p.stat().st_size for p in store.glob("*.jsonl")):
        assert proc.poll() is None and time.monotonic() < deadline, "".join(seen)
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return "".join(seen) + out, err


def interrupted(tmp_path: Path, sig: int, status: int) -> Path:
    data = big_gsm8k(tmp_path / "data")
    proc = start(tmp_path, data, "run")
    out, err = signalled(proc, sig, tmp_path / "store")
    assert proc.returncode == status, (out[-2000:], err[-2000:])
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err
    stopped = [x for x in (out + err).splitlines() if "stopped by" in x]
    assert len(stopped) == 1, out[-3000:]
    assert signal.Signals(sig).name in stopped[0]
    assert f"the store ({tmp_path / 'store'})" in stopped[0] and "continues" in stopped[0]
    return data


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupt_is_one_line_saying_what_is_stored(tmp_path, sig, status):
    interrupted(tmp_path, sig, status)


@pytest.mark.slow
def test_a_rerun_after_ctrl_c_serves_what_was_stored(tmp_path):
    data = interrupted(tmp_path, signal.SIGINT, 130)
    rerun = start(tmp_path, data, "run")  # the same command: resumes in the same directory
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err[-3000:]
    found = int(out.rsplit("found ", 1)[1].split()[0])
    assert found > 0  # what the first run stored is served, not made again
