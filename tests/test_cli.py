"""The `harness` console script, Hydra's tab completion through it, and the `paths` group."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import benchmarks
from harness.errors import ConfigError
from harness.plan import checked_run, compose

ROOT = Path(__file__).resolve().parent.parent
# what the installed console script does (pyproject [project.scripts]), named `harness`
SCRIPT = "import sys; sys.argv[0] = 'harness'; from harness.cli import main; main()"


def harness(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"PYTHONPATH": str(ROOT)} | env,
    )


def test_console_script_is_declared_in_pyproject():
    assert 'harness = "harness.cli:main"' in (ROOT / "pyproject.toml").read_text()


def test_harness_help_lists_the_commands_and_run_help_lists_config_groups(tmp_path):
    assert "harness run" in harness("--help").stdout
    out = harness("run", "--help", cwd=tmp_path).stdout  # from any directory
    assert "method: majority_vote" in out and "paths: default" in out
    assert "Examples:" in out and "harness run -m method.k=2,4" in out  # the project's own help
    assert "_schema" not in out and "Powered by Hydra" not in out  # internal groups hidden
    assert "dry_run=true" in out  # a sweep preset's whole study: --cfg job shows one point
    assert harness("bogus").returncode == 2


def test_tab_completion_installs_and_completes_overrides_after_the_subcommand():
    assert (
        "complete -o nospace -o default -F hydra_bash_completion"
        in harness("run", "-sc", "install=bash").stdout
    )
    line = "harness run method=self_m"
    out = harness("-sc", "query=bash", COMP_LINE=line, COMP_POINT=str(len(line))).stdout
    assert out.split() == ["method=self_moa", "method=self_moa_seq"]
    line = "harness r"
    out = harness("-sc", "query=bash", COMP_LINE=line, COMP_POINT=str(len(line))).stdout
    assert "run" in out.split()


def test_paths_are_absolute_whatever_the_launch_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HARNESS_STORE_DIR", raising=False)
    run = checked_run(compose())
    assert run.paths.root == str(ROOT)
    assert run.store_dir == str(ROOT / "runs" / "store")
    for p in (run.paths.runs, run.paths.store, run.paths.cache):
        assert Path(p).is_absolute()
    if run.paths.data is not None:  # this workplace's ../shared/data
        assert run.benchmark.data_dir == run.paths.data and Path(run.paths.data).is_dir()


def test_relative_paths_are_taken_from_the_project_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = checked_run(compose("paths.runs=elsewhere/runs"))
    assert run.paths.runs == str(ROOT / "elsewhere" / "runs")


def test_a_configured_data_dir_that_does_not_exist_fails_clearly_without_the_hub(tmp_path):
    run = checked_run(compose(f"paths.data={tmp_path / 'nope'}"))
    with pytest.raises(ConfigError, match=r"does not exist; set paths.data"):
        benchmarks.get(run.benchmark).load()


def test_bench_refuses_an_unknown_side_and_both_means_both():
    proc = subprocess.run(
        [sys.executable, "scripts/bench.py", "--sides", "harness,bare"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 2 and "invalid choice: 'harness,bare'" in proc.stderr
    from scripts.bench import SIDES

    assert SIDES["both"] == ("harness", "bare")


def test_the_test_summary_says_loudly_when_slurm_tests_were_skipped():
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_slurm.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env=os.environ | {"PYTHONPATH": str(ROOT), "PATH": "/nonexistent"},  # no sbatch
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "SLURM TESTS SKIPPED" in proc.stdout
    assert "scripts/slurm_start.sh && .venv/bin/python -m pytest tests/test_slurm.py" in proc.stdout


def complete_in_bash(tmp_path: Path, line: str) -> list[str]:
    """What bash offers for `line` through the installed completion function (a `harness`
    executable on PATH standing in for the console script)."""
    exe = tmp_path / "bin" / "harness"
    exe.parent.mkdir(exist_ok=True)
    exe.write_text(f'#!/bin/sh\nexec {sys.executable} -c "{SCRIPT}" "$@"\n')
    exe.chmod(0o755)
    script = (
        'eval "$(harness run -sc install=bash)"\n'
        f'COMP_LINE="{line}"; COMP_POINT={len(line)}; words=($COMP_LINE)\n'
        "COMP_CWORD=$(( ${#words[@]} - 1 ))\n"  # the last word is being completed
        'hydra_bash_completion; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    proc = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env=os.environ | {"PYTHONPATH": str(ROOT), "PATH": f"{exe.parent}:{os.environ['PATH']}"},
    )  # fmt: skip
    assert proc.returncode == 0 and "error" not in proc.stderr, proc.stderr
    return proc.stdout.split()


def test_bash_completes_all_subcommands_without_an_error_in_the_line(tmp_path):
    (tmp_path / "runs").mkdir()
    assert complete_in_bash(tmp_path, "harness ex") == ["export"]
    assert complete_in_bash(tmp_path, "harness run method=self_moa_s") == ["method=self_moa_seq"]
    assert complete_in_bash(tmp_path, "harness analyze --all-") == ["--all-k", "--all-aggregators"]
    assert complete_in_bash(tmp_path, "harness analyze ru") == ["runs"]  # a file name
    assert complete_in_bash(tmp_path, "harness export --ev") == ["--evaluate"]
