"""scripts/gpu_check.py on the CPU engine with the CPU kits, tiny sizes, so the device check keeps
working (slow). A lent GPU runs it with the GPU kits (scripts/gpu_trip.py finish)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_gsm8k

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_gpu_check_kits_run_a_three_model_mixture_study_then_the_bench(tmp_path):
    """What the lent GPU runs after the trip (scripts/gpu_trip.py finish), on the CPU kits: no
    weights travel, the third kit's template refuses a system role (gemma-2's way)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import gpu_kits  # noqa: PLC0415 - a script, not a module of the package

    kits = tmp_path / "kits"
    names = list(gpu_kits.build_kits("cpu", kits))
    write_gsm8k(kits)
    out = tmp_path / "check"
    cmd = [sys.executable, "scripts/gpu_check.py", "--device", "cpu", "--kits", str(kits),
           "--items", "2", "--sizes", "2", "--k", "2", "--max-tokens", "8", "--out", str(out),
           "--set", "engine.kwargs.kv_cache_memory_bytes=268435456"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    check = json.loads((out / "check.json").read_text())
    assert "study_failed" not in check, proc.stdout[-3000:]
    assert check["items"] == 2 and len(check["outcomes"]) == 2  # both configurations
    assert all(sum(o.values()) == 2 for o in check["outcomes"].values()), check["outcomes"]
    assert check["system_folded"] > 0  # the aggregator's template took no system message
    swaps = check["swaps"]
    assert {s["model"] for s in swaps} == set(names)
    for s in swaps:  # each close gives back at least 3/4 of what its load added
        added = s["loaded_gib"] - s["before_gib"]
        assert s["above_gib"] <= max(0.25 * added, 0.1), swaps
    assert "GiB above the level before the first load" in proc.stdout
    assert check["model"] == names[0] and check["raw_tokens_per_s"] > 0
    assert 0 < check["raw_vs_roofline"] and 0 < check["stage_vs_raw"]
    assert set(check["batched_speedup"]) == {"2"}
    bench = json.loads((out / "bench.json").read_text())
    assert bench["c"]["warm_made"] == 0 and bench["c"]["warm_found"] > 0
    assert "(e) roofline" in proc.stdout
