"""Sweep presets, launchers, preemption signals, W&B ids and progress lines."""

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from harness.config import ConfigError, options
from harness.plan import checked_run, compose
from harness.tracking import run_files, run_id

ROOT = Path(__file__).resolve().parent.parent


def hydra_compose(*overrides):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides), return_hydra_config=True)


@pytest.mark.parametrize("preset", options("sweep"))
def test_every_sweep_preset_is_a_valid_multirun(preset):
    from hydra.types import RunMode

    cfg = hydra_compose(f"sweep={preset}")
    assert cfg.hydra.mode == RunMode.MULTIRUN and cfg.hydra.sweeper.params
    checked_run(compose(f"sweep={preset}"))  # the preset's own values validate


def test_k_scaling_sweeps_both_self_moa_methods_over_k():
    params = hydra_compose("sweep=k_scaling").hydra.sweeper.params
    assert params["method"] == "self_moa,self_moa_seq"
    assert [int(k) for k in params["method.k"].split(",")] == [3, 6, 12, 24]


def test_slurm_launcher_exposes_its_knobs():
    launcher = hydra_compose(
        "launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gres=gpu:2"
    ).hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.partition == "gpu" and launcher.gres == "gpu:2"
    assert launcher.timeout_min >= 60 and launcher.max_num_timeout > 0  # see conf/launcher
    assert launcher.array_parallelism > 0 and launcher.mem_gb > 0


def test_local_launcher_is_the_default():
    assert hydra_compose().hydra.launcher._target_.endswith("BasicLauncher")


def test_phase_must_be_known_and_phase_model_in_the_study():
    with pytest.raises(ConfigError, match="phase='nope'; allowed: all, propose"):
        checked_run(compose("phase=nope"))
    with pytest.raises(ConfigError, match="phase_model is only used with phase=propose"):
        checked_run(compose("phase_model=smollm2-135m-instruct"))
    with pytest.raises(ConfigError, match="not a model of this study"):
        checked_run(compose("phase=propose", "phase_model=gemma-3-270m"))
    run = checked_run(compose("phase=propose", "phase_model=qwen2.5-coder-0.5b-instruct"))
    assert run.phase_model == "qwen2.5-coder-0.5b-instruct"


def test_wandb_run_id_is_stable_per_run_directory(tmp_path):
    assert run_id(str(tmp_path / "a")) == run_id(str(tmp_path / "a" / ".." / "a"))
    assert run_id(str(tmp_path / "a")) != run_id(str(tmp_path / "b"))


def test_run_files_leave_out_wandb_and_hidden_files(tmp_path):
    for name in ("config.yaml", "plots/q_vs_d.png", "wandb/x.wandb", ".submitit/1/log", ".tmp"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert [p.relative_to(tmp_path).as_posix() for p in run_files(str(tmp_path))] == [
        "config.yaml",
        "plots/q_vs_d.png",
    ]


def test_signal_raises_preempted_so_the_run_closes_cleanly(monkeypatch):
    from harness.run import Preempted, install_signal_handlers

    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        install_signal_handlers()
        with pytest.raises(Preempted, match="SIGUSR1"):
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(1)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def test_progress_logs_at_a_bounded_rate_off_a_terminal(monkeypatch, caplog):
    from harness.progress import Progress

    monkeypatch.setenv("HARNESS_PROGRESS_S", "3600")
    caplog.set_level(logging.INFO, logger="harness.progress")
    bar = Progress(total=500, desc="Processed prompts")  # pytest's stderr is not a terminal
    for _ in range(500):
        bar.postfix = "est. speed input: 10.00 toks/s, output: 5.00 toks/s"
        bar.update(1)
    bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2  # the start and the end, nothing in between
    assert lines[-1].startswith("Processed prompts: 500/500 [")
    assert "output: 5.00 toks/s" in lines[-1]


def test_progress_interval_must_be_a_number(monkeypatch):
    from harness.progress import interval_s

    monkeypatch.setenv("HARNESS_PROGRESS_S", "soon")
    with pytest.raises(ValueError, match="HARNESS_PROGRESS_S='soon'"):
        interval_s()


@pytest.mark.parametrize("script", ["slurm/study.sbatch", "slurm/two_phase.sh"])
def test_slurm_scripts_are_strict_bash_with_help(script):
    text = (ROOT / script).read_text()
    assert "set -euo pipefail" in text
    subprocess.run(["bash", "-n", str(ROOT / script)], check=True)
    out = subprocess.run(
        ["bash", str(ROOT / script), "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "Usage:" in out


def test_study_script_refuses_to_run_outside_slurm():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    proc = subprocess.run(
        ["bash", str(ROOT / "slurm/study.sbatch")], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 2 and "submit with sbatch" in proc.stderr


def test_sweep_group_names_the_preset_and_the_sweep_directory():
    from hydra.types import RunMode

    from harness.multirun import sweep_group

    hydra_cfg = OmegaConf.create(
        {
            "mode": RunMode.MULTIRUN,
            "sweep": {"dir": "runs/multirun/2025-01-02/03-04-05"},
            "runtime": {"choices": {"sweep": "k_scaling"}},
        }
    )
    assert sweep_group(hydra_cfg) == "k_scaling-2025-01-02_03-04-05"
    hydra_cfg.mode = RunMode.RUN
    assert sweep_group(hydra_cfg) is None


if sys.platform != "linux":  # flock and SLURM scripts are Linux-only here
    pytestmark = pytest.mark.skip(reason="Linux only")


def test_gres_gpus_reads_the_count_of_every_gres_form():
    from harness.cluster import gres_gpus

    assert [gres_gpus(g) for g in ("gpu:2", "gpu:a100:4", "gpu", None, "shard:1")] == [
        2,
        4,
        1,
        None,
        None,
    ]


def test_granted_gpus_must_match_tensor_parallel_size():
    from harness.cluster import check_tensor_parallel, granted_gpus
    from harness.errors import ConfigError

    env = {"SLURM_JOB_ID": "7", "SLURM_JOB_GPUS": "0,1"}
    assert granted_gpus(env) == 2 and granted_gpus({}) is None
    check_tensor_parallel(2, granted_gpus(env), "job")
    check_tensor_parallel(1, None, "job")
    with pytest.raises(ConfigError, match=r"--gres=gpu:4 .*tensor_parallel_size=2"):
        check_tensor_parallel(4, 2, "job")


def test_slurm_sweep_with_gres_not_matching_tensor_parallel_fails_before_submitting(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.run",
            "-m",
            "launcher=slurm",
            "hydra.launcher.gres=gpu:2",
            "engine=gpu",
            "method.k=2,3",
            f"hydra.sweep.dir={tmp_path / 'sw'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "tensor_parallel_size=1" in proc.stderr and "gpu:2" in proc.stderr
    assert not (tmp_path / "sw" / ".submitit").exists()


def test_launcher_setup_sources_the_cluster_environment():
    cfg = hydra_compose("launcher=slurm")
    assert list(cfg.hydra.launcher.setup) == [f"source {ROOT}/slurm/env.sh"]
    env = (ROOT / "slurm" / "env.sh").read_text()
    for var in (
        "HF_HOME",
        "HF_HUB_OFFLINE",
        "WANDB_DATA_DIR",
        "HARNESS_CACHE_DIR",
        "HARNESS_SETUP",
    ):
        assert f"{var}" in env


def test_a_point_is_named_by_the_presets_and_the_command_lines_swept_keys(tmp_path):
    from types import SimpleNamespace

    from hydra.types import RunMode

    from harness.multirun import point_overrides

    (tmp_path / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    task: ['method.k=2,3', 'benchmark.limit=3']\n"
    )
    hydra_cfg = SimpleNamespace(
        mode=RunMode.MULTIRUN,
        sweeper={"params": {"method.temperature": "0.3,0.5", "method": "self_moa"}},
        sweep=SimpleNamespace(dir=str(tmp_path)),
        overrides=SimpleNamespace(
            task=["method=self_moa", "method.temperature=0.5", "method.k=3", "benchmark.limit=3"]
        ),
    )
    assert point_overrides(hydra_cfg) == ["method.k=3", "method.temperature=0.5"]
    hydra_cfg.mode = RunMode.RUN
    assert point_overrides(hydra_cfg) == []
