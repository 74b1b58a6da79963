"""SLURM that fits the node: the README's try-it sweep (launcher=slurm_local) runs from a fresh
clone on this machine's one-node cluster, and a launcher asking more than the node has is one
line naming the knob (exit 2, nothing queued), from `sbatch --test-only` before submission.

The slow tests need the cluster (scripts/slurm_start.sh, as tests/test_slurm.py); the
explanations of sbatch's refusals are checked on recorded node descriptions too."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cluster import explain_refusal, sbatch_text
from harness.config import CONF_DIR
from harness.models import cache_dir
from harness.tracking import run_id
from tests.conftest import NEEDS_SLURM

ROOT = Path(__file__).resolve().parent.parent
NODE = {"NodeName": "vm", "CPUTot": "8", "RealMemory": "21694", "Gres": "(null)",
        "Partitions": "debug,low,high"}  # fmt: skip
GPU_NODE = NODE | {"NodeName": "g1", "Gres": "gpu:a100:4", "Partitions": "gpu"}


def launcher(*overrides: str) -> dict:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(
            "config", ["launcher=slurm_local", *overrides], return_hydra_config=True
        )
    return OmegaConf.to_container(cfg.hydra.launcher, resolve=False)


def test_slurm_local_fits_this_machine_and_submitit_writes_its_resources(tmp_path):
    params = launcher()
    assert (params["cpus_per_task"], params["mem_gb"], params["array_parallelism"]) == (1, 4, 2)
    params["setup"] = []
    text = sbatch_text(params, str(tmp_path))
    assert "#SBATCH --mem=4GB" in text and "#SBATCH --cpus-per-task=1" in text
    assert "#SBATCH --time=60" in text


@pytest.mark.parametrize(
    "error, params, says",
    [
        ("Memory specification can not be satisfied", {"mem_gb": 32, "cpus_per_task": 4},
         "hydra.launcher.mem_gb=32 is more than any node has (21694 MB, 21 GB): set "
         "hydra.launcher.mem_gb=21 or less"),
        ("Requested node configuration is not available", {"mem_gb": 4, "cpus_per_task": 16},
         "hydra.launcher.cpus_per_task=16 (x tasks_per_node=1) is more than any node has (8 CPUs)"),
        ("Invalid generic resource (gres) specification", {"mem_gb": 4, "gres": "gpu:2"},
         "hydra.launcher.gres=gpu:2 asks 2 GPU(s) but the nodes have at most 0"),
        ("Invalid qos specification", {"mem_gb": 4, "qos": "high"},
         "sbatch refuses the sweep's jobs: Invalid qos specification; check hydra.launcher.*"),
    ],
)  # fmt: skip
def test_a_refusal_names_the_knob_to_change(error, params, says):
    line = explain_refusal(error, params, [NODE])
    assert says in line and "\n" not in line


def test_gpus_of_a_partition_are_counted_from_its_gres():
    line = explain_refusal("x", {"gres": "gpu:8", "partition": "gpu"}, [GPU_NODE])
    assert "asks 8 GPU(s) but the nodes of partition gpu have at most 4" in line
    assert "Requested" not in explain_refusal("x", {"gres": "gpu:4"}, [GPU_NODE])


# -- against the real local cluster -----------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip(), (
        f"sbatch is installed but the SLURM controller does not answer ({proc.stderr.strip()}); "
        "start it with scripts/slurm_start.sh"
    )


def needs_slurm(test):
    """slow, skipped where sbatch is absent, and failing where the controller does not answer"""
    for mark in [*NEEDS_SLURM, pytest.mark.usefixtures("cluster")]:
        test = mark(test)
    return test


def queued() -> set[str]:
    return set(subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True,
                              text=True).stdout.split())  # fmt: skip


@pytest.mark.parametrize(
    "overrides, knob",
    [(["hydra.launcher.mem_gb=100000"], "hydra.launcher.mem_gb=100000 is more than any node"),
     (["hydra.launcher.partition=nope"], "hydra.launcher.partition='nope' is not a partition")],
)  # fmt: skip
@needs_slurm
def test_a_launcher_asking_too_much_is_one_line_and_nothing_is_queued(tmp_path, overrides, knob):
    before = queued()
    start = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "harness.run", "-m", "experiment=smoke", "method.k=2,3",
         "launcher=slurm_local", *overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("config error: ") and knob in lines[0], lines
    assert not (tmp_path / "sweep" / ".submitit").exists() and queued() <= before
    assert time.time() - start < 60


def readme_try_it() -> str:
    """The README's try-it sweep on the local cluster (the line with launcher=slurm_local)."""
    text = (ROOT / "README.md").read_text()
    found = re.findall(r"^(python -m harness\.run -m .*launcher=slurm_local.*)$", text, re.M)
    assert len(found) == 1, found
    return found[0].split("#")[0].strip()


@needs_slurm
def test_readme_try_it_runs_from_a_fresh_clone_on_this_cluster(tmp_path, data_dir):
    """The README's sweep (two points of experiment=smoke, k=2 and k=3) from a fresh clone, its
    two SLURM jobs at once: one pool of proposals (sample j of an item generated once for both
    points, even concurrently), each point one W&B run of the sweep's group, the job logs where
    the README says."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    command = readme_try_it().split()[1:]  # after `python`
    sweep, store = tmp_path / "sweep", tmp_path / "store"
    start = time.time()
    proc = subprocess.run(
        [sys.executable, *command, f"benchmark.data_dir={data_dir}", f"store_dir={store}",
         f"hydra.sweep.dir={sweep}", "logger.mode=offline"],
        cwd=clone, capture_output=True, text=True, timeout=900,
        env=os.environ | {"PYTHONPATH": str(clone), "HARNESS_CACHE_DIR": str(cache_dir())},
    )  # fmt: skip
    print(f"README try-it sweep from a fresh clone: {time.time() - start:.0f} s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    points = sorted(p.parent for p in sweep.glob("*/metrics.json"))
    # named by number and swept overrides, e.g. 0_method.k=2
    assert [p.name.split("_")[0] for p in points] == ["0", "1"]
    assert all("method.k=" in p.name for p in points)
    metrics = [json.loads((p / "metrics.json").read_text()) for p in points]
    assert [sorted(m["configurations"]) for m in metrics] == [
        ["self_moa(k=2)", "single"], ["self_moa(k=3)", "single"]]  # fmt: skip
    assert all((p / "run.log").is_file() for p in points)
    # each proposal stored once and made once over both points
    stored = [json.loads(line) for f in sorted(store.glob("*.jsonl")) for line in f.open()]
    proposals = [r["key"] for r in stored if r["stage"] == "propose"]
    assert len(proposals) == len(set(proposals)) > 0
    made = sum(s["made"] for m in metrics for s in m["stages"] if s["stage"] == "propose")
    assert made == len(proposals)
    for p in points:  # one offline W&B run per point, in the sweep's group
        (wandb_run,) = (p / "wandb").glob("offline-run-*/run-*.wandb")
        assert wandb_run.name == f"run-{run_id(str(p))}.wandb"
        assert f"sweep-{sweep.parent.name}_{sweep.name}".encode() in wandb_run.read_bytes()
    # each point's job log, where the README says: <sweep dir>/.submitit/<job id>/
    logs = sorted(sweep.glob(".submitit/*/*_log.out"))
    assert len(logs) == 2 and all(log.stat().st_size > 0 for log in logs), logs
    assert "summary.txt" in os.listdir(sweep)


@needs_slurm
def test_a_point_refused_inside_its_job_ends_the_sweep_with_its_line(tmp_path, data_dir):
    """A config error found in the job (here the dry run's: a KV cache too small for one
    sequence) comes back to the submitter as that point's line, exit 2; an exit inside the job
    would leave submitit no result and, without accounting, the sweep waiting forever."""
    proc = subprocess.run(
        [sys.executable, "-m", "harness.run", "-m", "experiment=smoke", "method.k=2,3",
         "launcher=slurm_local", "dry_run=true", "engine.kwargs.kv_cache_memory_bytes=1000",
         f"benchmark.data_dir={data_dir}", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [x for x in proc.stderr.splitlines() if x.startswith("failed: point ")]
    assert len(lines) == 2 and all(
        "config error: smollm2-135m-instruct: engine.kwargs.kv_cache_memory_bytes=1000" in x
        for x in lines
    ), proc.stderr[-2000:]
