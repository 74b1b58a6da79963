"""Run directories: unique names, one live run per directory, atomic writes, file-system faults."""

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.errors import PathError
from harness.rundir import RUN_TAG, RunDir, release
from tests.faults import remount_read_only, tmpfs

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def rundir(tmp_path):
    run = RunDir(tmp_path / "run")
    yield run
    release(run.path)


def hydra_dirs(*overrides: str) -> tuple[str, str]:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    return cfg.hydra.run.dir, cfg.hydra.sweep.dir


def test_hydra_run_and_sweep_directories_end_with_the_process_tag():
    run, sweep = hydra_dirs("method=single")
    assert run.endswith(f"_single_qwen2.5-coder-0.5b-instruct_{RUN_TAG}")
    assert sweep.endswith(f"_{RUN_TAG}")


def test_two_processes_draw_different_tags():
    code = "import harness.rundir as r; print(r.RUN_TAG)"
    tags = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
        for _ in range(3)
    }
    assert len(tags) == 3 and all(len(t) == 4 for t in tags)


def test_a_run_directory_held_by_another_live_run_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    fd = os.open(tmp_path / "run" / ".lock", os.O_RDWR | os.O_CREAT)
    os.write(fd, b"host h pid 42\n")
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(PathError, match=r"another live run \(host h pid 42\)") as e:
            RunDir(tmp_path / "run")
        assert e.value.which == "run"
    finally:
        os.close(fd)
    RunDir(tmp_path / "run")  # the holder has ended: continue the directory
    release(tmp_path / "run")


def test_the_same_process_may_open_its_run_directory_twice(rundir):
    RunDir(rundir.path).write_metrics({"a": 1})
    assert (rundir.path / ".lock").read_text().startswith("host ")


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(rundir, monkeypatch):
    rundir.write_metrics({"a": 1})
    old = (rundir.path / "metrics.json").read_text()

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(PathError, match="the disk is full while writing metrics.json"):
        rundir.write_metrics({"a": 2})
    assert (rundir.path / "metrics.json").read_text() == old
    assert not list(rundir.path.glob("*.tmp")) and not list(rundir.path.glob(".*.tmp"))


def test_a_run_directory_below_a_file_is_a_path_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(PathError, match="run directory .*creating it"):
        RunDir(tmp_path / "file" / "run")
    with pytest.raises(PathError, match="it is a file"):
        RunDir(tmp_path / "file")


def test_a_read_only_run_directory_is_a_path_error(tmp_path):
    with tmpfs(tmp_path / "fs", "64k") as fs:
        remount_read_only(fs)
        with pytest.raises(PathError, match="read-only while creating it"):
            RunDir(fs / "run")


def test_a_full_disk_is_a_path_error_with_no_temporary_file(tmp_path):
    with tmpfs(tmp_path / "fs", "64k") as fs:
        run = RunDir(fs / "run")
        run.write_metrics({"a": 1})
        with pytest.raises(PathError, match="the disk is full while writing metrics.json"):
            run.write_metrics({"text": "x" * 200000})
        assert sorted(p.name for p in run.path.iterdir()) == [".harness", ".lock", "metrics.json"]
        release(run.path)


def test_a_forked_child_does_not_keep_the_lock_of_its_parent(tmp_path):
    run = RunDir(tmp_path / "run")
    ready, go = os.pipe()
    pid = os.fork()
    if pid == 0:  # like vLLM's engine process, outliving the run's release of its directory
        os.write(go, b"x")  # fork handlers have run
        time.sleep(3)
        os._exit(0)
    os.read(ready, 1)
    try:
        release(run.path)
        fd = os.open(run.path / ".lock", os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free although the child lives
        os.close(fd)
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
