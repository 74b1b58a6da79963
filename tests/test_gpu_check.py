"""scripts/gpu_check.py on the CPU engine, tiny sizes, so the device check keeps working (slow).
On a lent GPU the same script runs with --device cuda."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_gsm8k

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_gpu_check_runs_on_the_cpu_engine(tmp_path):
    data = write_gsm8k(tmp_path / "data")
    out = tmp_path / "check"
    cmd = [sys.executable, "scripts/gpu_check.py", "--device", "cpu", "--sizes", "2,3", "--k",
           "2", "--max-tokens", "8", "--data-dir", str(data), "--out", str(out),
           "--set", "engine.kwargs.kv_cache_memory_bytes=536870912"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    check = json.loads((out / "check.json").read_text())
    assert check["device"] == "cpu" and check["raw_tokens_per_s"] > 0
    assert 0 < check["raw_vs_roofline"] and 0 < check["stage_vs_raw"]
    assert set(check["batched_speedup"]) == {"2", "3"}
    bench = json.loads((out / "bench.json").read_text())
    assert bench["c"]["warm_made"] == 0 and bench["c"]["warm_found"] > 0
    assert "(e) roofline" in proc.stdout
