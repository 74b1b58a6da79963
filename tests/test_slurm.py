"""Against a real SLURM scheduler (scripts/slurm_start.sh, run by .ci/run): the batch script,
a requeue in the middle of a study, the USR1 self-requeue near the time limit and
slurm/two_phase.sh (these two with the fake engine). A sweep through hydra-submitit-launcher is
tests/test_launcher.py's README try-it.

Skipped, with the reason, where `sbatch` is absent (laptops); fails if sbatch is present but the
controller does not answer. Real vLLM on SmolLM2 with tiny limits, so the module takes minutes.
"""

import collections
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.models import cache_dir
from harness.tracking import run_id
from tests.conftest import NEEDS_SLURM, write_gsm8k

ROOT = Path(__file__).resolve().parent.parent
pytestmark = NEEDS_SLURM
# small and cheap: 2 items, 2 samples, a bounded KV cache so concurrent jobs fit in memory
SMALL = [
    "experiment=smoke",
    "benchmark.limit=2",
    "method.k=2",
    "method.max_tokens=32",
    "method.aggregator_max_tokens=48",
    "engine.kwargs.kv_cache_memory_bytes=536870912",
    "engine.kwargs.max_model_len=2048",
    "engine.kwargs.max_num_batched_tokens=2048",
]
PROPOSALS = 2 + 2 * 2  # greedy baseline + 2 samples, per item


@pytest.fixture(scope="module", autouse=True)
def cluster():
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip(), (
        f"sbatch is installed but the SLURM controller does not answer ({proc.stderr.strip()}); "
        "start it with scripts/slurm_start.sh"
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_gsm8k(tmp_path_factory.mktemp("data"))


def submit(
    run_dir: Path, store: Path, data: Path, *extra: str, options=("--mem=4G",), env=None
) -> str:
    """slurm/study.sbatch on the SMALL study; by default the real python with the models
    prepared here, else `env` (e.g. fake_env's)."""
    proc = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--cpus-per-task=1",
            *options,
            f"--output={run_dir.parent}/slurm-%j.out",
            "slurm/study.sbatch",
            *SMALL,
            f"benchmark.data_dir={data}",
            f"store_dir={store}",
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env
        or {
            "PATH": "/usr/bin:/bin",
            "RUN_DIR": str(run_dir),
            "PYTHON": sys.executable,
            "HARNESS_CACHE_DIR": str(cache_dir()),  # the models prepared here already
        },
        check=True,
    )
    return proc.stdout.strip()


def job_state(job: str) -> str:
    out = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
    return out.split("JobState=")[1].split()[0] if "JobState=" in out else "GONE"


def wait_done(job: str, timeout: float = 600) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = job_state(job)
        if state not in ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING"):
            return state
        time.sleep(1)
    subprocess.run(["scancel", job])
    raise AssertionError(f"job {job} still {job_state(job)} after {timeout} s")


def store_lines(store: Path) -> list[dict]:
    return [json.loads(line) for p in sorted(store.glob("*.jsonl")) for line in p.open()]


def comparable(run_dir: Path) -> list[dict]:
    records = [json.loads(line) for line in (run_dir / "records.jsonl").open()]
    return [{k: v for k, v in r.items() if k != "gen_s"} for r in records]


def wandb_ids(run_dir: Path) -> list[str]:
    return [p.name.rsplit("-", 1)[1] for p in sorted((run_dir / "wandb").glob("offline-run-*"))]


def fake_python(tmp: Path) -> Path:
    """A PYTHON for slurm/*.sh whose `-m harness.run` is tests/fake_harness.py (no model loads)."""
    path = tmp / "python"
    path.write_text(
        "#!/bin/bash\n"
        f"export PYTHONPATH={ROOT}\n"
        'if [ "$1" = -m ] && [ "$2" = harness.run ]; then\n'
        f'  shift 2; exec {sys.executable} {ROOT}/tests/fake_harness.py "$@"\n'
        "fi\n"
        f'exec {sys.executable} "$@"\n'
    )
    path.chmod(0o755)
    return path


def fake_env(tmp: Path, **extra: str) -> dict:
    return {
        "PATH": "/usr/bin:/bin",
        "PYTHON": str(fake_python(tmp)),
        "HARNESS_SCRATCH": str(tmp / "scratch"),
        **extra,
    }


@pytest.fixture(scope="module")
def batch_run(tmp_path_factory, data):
    base = tmp_path_factory.mktemp("batch")
    start = time.time()
    job = submit(base / "run", base / "store", data)
    state = wait_done(job)
    print(f"batch study job {job}: {state} in {time.time() - start:.0f} s")
    return job, state, base / "run", base / "store"


def test_batch_script_runs_a_study_with_logs_and_timing_in_the_run_directory(batch_run):
    job, state, run_dir, _ = batch_run
    log = (run_dir / "slurm.log").read_text()
    assert state == "COMPLETED", log[-3000:]
    assert f"== job {job} attempt 1" in log and "== exit 0 after" in log
    assert "Processed prompts: 6/6" in log  # progress lines, not a redrawn bar
    for name in ("config.yaml", "records.jsonl", "metrics.json", "run.log"):
        assert (run_dir / name).is_file()
    assert wandb_ids(run_dir) == [run_id(str(run_dir))]


def test_requeue_mid_study_loses_repeats_and_regenerates_nothing(batch_run, tmp_path, data):
    """`scontrol requeue` once the proposals are durable; the job restarts and finishes."""
    _, _, reference, ref_store = batch_run
    run_dir, store = tmp_path / "run", tmp_path / "store"
    job = submit(run_dir, store, data)
    deadline = time.time() + 600
    while time.time() < deadline and len(store_lines(store)) < PROPOSALS:
        assert job_state(job) in ("PENDING", "RUNNING", "CONFIGURING"), job_state(job)
        time.sleep(0.2)
    subprocess.run(["scontrol", "requeue", job], check=True)
    assert wait_done(job) == "COMPLETED", (run_dir / "slurm.log").read_text()[-3000:]

    log = (run_dir / "slurm.log").read_text()
    assert f"== job {job} attempt 1" in log and f"== job {job} attempt 2" in log
    assert "== TERM" in log  # the first attempt was stopped, not finished
    lines = store_lines(store)
    counts = collections.Counter(r["key"] for r in lines)
    assert max(counts.values()) == 1, "a generation was stored twice"
    # everything the uninterrupted run generated, each exactly once: nothing lost or regenerated
    assert sorted(counts) == sorted(r["key"] for r in store_lines(ref_store))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["store/found"] >= PROPOSALS  # the second attempt took the proposals stored
    assert comparable(run_dir) == comparable(reference)
    ref = json.loads((reference / "metrics.json").read_text())["configurations"]
    keys = ("gsm8k/acc", "gsm8k/proposal_acc", "cost/calls", "cost/generated_tokens")
    assert {c: [m[k] for k in keys] for c, m in metrics["configurations"].items()} == {
        c: [m[k] for k in keys] for c, m in ref.items()
    }
    assert set(wandb_ids(run_dir)) == {run_id(str(run_dir))}  # one W&B run, resumed


def test_usr1_near_the_time_limit_requeues_the_job_which_then_finishes(usr1_job):
    """The first attempt (slow after its proposals) stops at USR1 and requeues itself; the
    second finishes."""
    job, run_dir = usr1_job
    state = wait_done(job, timeout=300)
    log = (run_dir / "slurm.log").read_text()
    assert state == "COMPLETED", log[-3000:]
    assert "== USR1" in log and f"== requeued job {job}" in log
    assert f"== job {job} attempt 2" in log and "== exit 0 after" in log
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["store/found"] >= PROPOSALS  # attempt 1 stored its proposals before USR1
    assert set(wandb_ids(run_dir)) == {run_id(str(run_dir))}  # one W&B run, resumed


def test_two_phase_proposes_per_model_in_an_array_then_studies_from_the_store(tmp_path, data):
    """Two proposer models (mixture qqss): phase 1 is a 2-task array, phase 2 only aggregates."""
    run_dir, store = tmp_path / "run", tmp_path / "store"
    overrides = [  # SMALL without the smoke preset: it sets method.k, which mixed_moa has not
        "model=smollm2-135m-instruct",
        *(o for o in SMALL if o not in ("experiment=smoke", "method.k=2")),
        "method=mixed_moa",
        "method.mixture=qqss",
        "method.temperature=0.7",
        f"benchmark.data_dir={data}",
        f"store_dir={store}",
    ]
    proc = subprocess.run(
        [
            "slurm/two_phase.sh",
            "--sbatch",
            f"--cpus-per-task=1 --mem=2G --output={tmp_path}/slurm-%j.out",
            *overrides,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=fake_env(tmp_path, RUN_DIR=str(run_dir)),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "proposals of 2 models" in proc.stdout
    array, study = proc.stdout.split("phase 1 array job ")[1].split(";")[0], None
    study = proc.stdout.split("phase 2 study job ")[1].split()[0]
    assert wait_done(study, timeout=300) == "COMPLETED", (run_dir / "slurm.log").read_text()
    phase1 = [json.loads((run_dir / str(i) / "metrics.json").read_text()) for i in (0, 1)]
    assert [m["phase"] for m in phase1] == ["propose", "propose"]
    assert sorted(s["model"] for m in phase1 for s in m["stages"]) == sorted(
        ["qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct"]
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    proposed = [s for s in metrics["stages"] if s["stage"] == "propose"]
    assert proposed and all(s["made"] == 0 for s in proposed), proposed
    assert any(s["made"] > 0 for s in metrics["stages"] if s["stage"] == "aggregate")
    assert array in (run_dir / "0" / "slurm.log").read_text()
