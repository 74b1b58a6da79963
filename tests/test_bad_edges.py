"""Bad inputs at the edges (issue 24), through the real entry point: run and sweep directories,
environment, paths and names, served-engine settings, engine arguments.

Every case runs `python -m harness.run` in a forked child of this process (imports done once; a
case that got as far as loading a model is killed there, HARNESS_FAULT_AT=load), from its own
launch directory, and asserts: the exit status, one line naming the cause, no traceback, and
that nothing outside the run's own directory changed: the launch directory (a user's files),
the live run's `.hydra/` and the store.
"""

from __future__ import annotations

import hashlib
import os
import re
import runpy
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import harness.run  # noqa: F401 - imported once, run afresh in each forked case
from tests.conftest import write_gsm8k

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Case:
    name: str
    args: list[str]
    status: int
    message: str  # a regex the one line on stderr must match
    env: dict[str, str] = field(default_factory=dict)
    module: str = "harness.run"


def tree(root: Path) -> dict[str, str]:
    """Every path under `root` with a digest of its bytes (directories and special files: kind)."""
    found = {}
    for dirpath, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink() or not p.is_file():
                found[rel] = "dir" if p.is_dir() and not p.is_symlink() else "special"
            else:
                found[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def _child(case: Case, cwd: Path, out: Path, err: Path) -> None:
    code = 1
    try:
        for fd, path in ((1, out), (2, err)):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - the child's own streams
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        os.chdir(cwd)
        for key, value in case.env.items():
            os.environ[key] = value
        os.environ["HARNESS_FAULT_AT"] = "load"
        module = sys.modules[case.module]
        sys.argv = [module.__file__, *case.args]
        del sys.modules[case.module]  # run afresh as __main__, its imports already loaded
        runpy.run_module(case.module, run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str


def run_cases(cases: list[Case], tmp: Path, parallel: int = 4) -> dict[str, Result]:
    """Each case in its own launch directory tmp/<name>/launch, `parallel` at a time."""
    results, running = {}, {}

    def reap() -> None:
        pid, status = os.wait()
        case = running.pop(pid)
        d = tmp / case.name
        results[case.name] = Result(
            os.waitstatus_to_exitcode(status), (d / "out").read_text(), (d / "err").read_text()
        )

    for case in cases:
        while len(running) >= parallel:
            reap()
        d = tmp / case.name
        pid = os.fork()
        if pid == 0:
            _child(case, d / "launch", d / "out", d / "err")
        running[pid] = case
    while running:
        reap()
    return results


def one_clear_line(got: Result, status: int, message: str) -> None:
    assert "Traceback" not in got.stderr + got.stdout, got.stderr[-3000:]
    assert got.status == status, (got.status, got.stderr[-3000:])
    lines = [x for x in got.stderr.splitlines() if x.strip()]
    assert len([x for x in lines if re.match(r"(config )?error: ", x)]) == 1, got.stderr[-3000:]
    assert re.search(message, got.stderr), got.stderr[-3000:]


# ---- run and sweep directories ----------------------------------------------------------------


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("edges")
    data = write_gsm8k(root / "data")
    store = root / "store"
    common = [f"benchmark.data_dir={data}", f"store_dir={store}", "logger.mode=disabled"]
    return root, common


LONG = "x" * 300


def dir_cases(root: Path, common: list[str]) -> list[Case]:
    d = lambda name: root / "cases" / name / "launch"  # noqa: E731 - each case's launch dir
    return [
        Case("empty_run_dir", ["hydra.run.dir=", *common], 2, r"hydra.run.dir is empty"),
        Case(
            "empty_run_dir_config_error",
            ["hydra.run.dir=", "method.k=0", *common],
            2,
            r"hydra.run.dir is empty",
        ),
        Case(
            "run_dir_a_file",
            [f"hydra.run.dir={d('run_dir_a_file') / 'config.yaml'}", *common],
            2,
            r"run directory .*config.yaml': it is a file, not a directory",
        ),
        Case(
            "run_dir_under_a_file",
            [f"hydra.run.dir={d('run_dir_under_a_file') / 'config.yaml' / 'run'}", *common],
            2,
            r"config.yaml is a file, not a directory",
        ),
        Case(
            "run_dir_too_long",
            [f"hydra.run.dir={root / LONG / 'run'}", *common],
            2,
            r"run directory .*\(\d+ characters\)': the name is too long",
        ),
        Case(
            "run_dir_not_made_by_the_harness",
            [f"hydra.run.dir={d('run_dir_not_made_by_the_harness')}", *common],
            2,
            r"holds files and was not made by the harness \(no .harness in it\)",
        ),
        Case(
            "run_dir_a_fifo",
            [f"hydra.run.dir={d('run_dir_a_fifo') / 'fifo'}", *common],
            2,
            r"it is a FIFO \(named pipe\), not a directory",
        ),
        Case(
            "run_dir_a_symlink_loop",
            [f"hydra.run.dir={d('run_dir_a_symlink_loop') / 'loop'}", *common],
            2,
            r"it is a symlink loop, not a directory",
        ),
        Case(
            "run_dir_dev_null",
            ["hydra.run.dir=/dev/null", *common],
            2,
            r"it is a character device, not a directory",
        ),
        Case(
            "runs_dir_dev_null",
            ["method.k=0", *common],
            2,
            r"HARNESS_RUNS_DIR='/dev/null' is a character device, not a directory",
            env={"HARNESS_RUNS_DIR": "/dev/null"},
        ),
        Case(
            "runs_dir_a_file",
            ["method.k=0", *common],
            2,
            r"HARNESS_RUNS_DIR=.*config.yaml' is a file, not a directory",
            env={"HARNESS_RUNS_DIR": str(d("runs_dir_a_file") / "config.yaml")},
        ),
        Case(
            "sweep_dir_a_file",
            ["-m", "method.k=2,3", f"hydra.sweep.dir={d('sweep_dir_a_file') / 'config.yaml'}"]
            + common,
            2,
            r"sweep directory .*config.yaml': it is a file, not a directory",
        ),
        Case(
            "sweep_dir_not_made_by_the_harness",
            ["-m", "method.k=2,3", f"hydra.sweep.dir={d('sweep_dir_not_made_by_the_harness')}"]
            + common,
            2,
            r"sweep directory .*was not made by the harness",
        ),
        Case(
            "relative_data_dir_from_the_project_root",
            ["method.k=0", *common],
            2,
            r"HARNESS_DATA_DIR='no-such-data' does not exist",
            env={"HARNESS_DATA_DIR": "no-such-data"},
        ),
    ]


@pytest.fixture(scope="module")
def dir_results(base):
    root, common = base
    cases = dir_cases(root, common)
    for case in cases:
        launch = root / "cases" / case.name / "launch"
        launch.mkdir(parents=True)
        (launch / "config.yaml").write_text("my: own config\n")  # a user's file
        (launch / "run.log").write_text("my own log\n")
    os.mkfifo(root / "cases" / "run_dir_a_fifo" / "launch" / "fifo")
    loop = root / "cases" / "run_dir_a_symlink_loop" / "launch" / "loop"
    loop.symlink_to(loop)
    # the project root's no-such-data exists in the launch dir: the check must not look there
    (root / "cases" / "relative_data_dir_from_the_project_root" / "launch" / "no-such-data").mkdir()
    before = {c.name: tree(root / "cases" / c.name / "launch") for c in cases}
    results = run_cases(cases, root / "cases")
    return cases, results, before


DIR_CASES = [c.name for c in dir_cases(Path("/r"), [])]


@pytest.mark.parametrize("name", DIR_CASES)
def test_a_bad_run_directory_is_one_line_and_writes_nothing(base, dir_results, name):
    root, _ = base
    cases, results, before = dir_results
    case = next(c for c in cases if c.name == name)
    one_clear_line(results[name], case.status, case.message)
    assert tree(root / "cases" / name / "launch") == before[name]  # the user's files untouched
    assert set(os.listdir(root)) <= {"data", "cases"}  # no store, nothing made beside


def test_a_run_directory_held_by_a_live_run_keeps_its_hydra_files(base, tmp_path):
    root, common = base
    run_dir = tmp_path / "live"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from harness.rundir import RunDir; RunDir(sys.argv[1]); "
            "print('held', flush=True); time.sleep(60)",
            str(run_dir),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        (run_dir / ".hydra").mkdir()
        (run_dir / ".hydra" / "config.yaml").write_text("the live run's config\n")
        (run_dir / "run.log").write_text("the live run's log\n")
        before = tree(run_dir)
        (tmp_path / "held" / "launch").mkdir(parents=True)
        got = run_cases(
            [Case("held", [f"hydra.run.dir={run_dir}", "method.k=3", *common], 2, "")], tmp_path
        )["held"]
    finally:
        holder.kill()
        holder.wait()
    one_clear_line(got, 2, r"run directory .*another live run \(host .* pid \d+\) is writing")
    assert tree(run_dir) == before
    assert tree(tmp_path / "held" / "launch") == {}


def test_a_read_only_run_directory_is_one_line(base, tmp_path):
    from tests.faults import remount_read_only, tmpfs

    _, common = base
    with tmpfs(tmp_path / "fs", "64k") as fs:
        remount_read_only(fs)
        (tmp_path / "ro" / "launch").mkdir(parents=True)
        got = run_cases([Case("ro", [f"hydra.run.dir={fs / 'run'}", *common], 2, "")], tmp_path)[
            "ro"
        ]
    one_clear_line(got, 2, r"run directory .*: the file system is read-only while creating it")


def test_an_empty_runs_dir_variable_counts_as_unset_and_relative_dirs_are_from_the_root(
    base, tmp_path
):
    """HARNESS_RUNS_DIR= is unset, like HARNESS_STORE_DIR=: runs go to <root>/runs, and a
    relative hydra.run.dir is taken from the project root (HARNESS_ROOT), not the launch dir."""
    _, common = base
    project = tmp_path / "project"
    project.mkdir()
    for name in ("unset", "relative"):
        (tmp_path / name / "launch").mkdir(parents=True)
    env = {"HARNESS_ROOT": str(project), "HARNESS_RUNS_DIR": ""}
    got = run_cases(
        [
            Case("unset", ["method.k=0", *common], 2, "", env=env),
            Case("relative", ["hydra.run.dir=mine/run1", "method.k=0", *common], 2, "", env=env),
        ],
        tmp_path,
    )
    for name in ("unset", "relative"):
        one_clear_line(got[name], 2, r"method.k must be an integer")
        assert tree(tmp_path / name / "launch") == {}
    assert (project / "mine" / "run1" / ".harness").is_file()
    runs = list((project / "runs").glob("*/*_self_moa_*"))
    assert len(runs) == 1 and (runs[0] / ".harness").is_file()


# ---- names, labels, paths, special files, served settings, engine arguments, sweeps -----------

SERVED = ["engine=openai", "engine.kwargs.base_urls=[http://127.0.0.1:9/v1]"]


def config_cases(root: Path, common: list[str]) -> list[Case]:
    special = root / "special"
    return [
        Case(
            "letter_is_a_path",
            ["method=mixed_moa", "method.mixture=qq", "letters.q=../method/self_moa", *common],
            2,
            r"letters.q='../method/self_moa': unknown model",
        ),
        Case(
            "aggregator_is_a_path",
            ["method.aggregator=../model/gemma-3-270m", *common],
            2,
            r"method.aggregator='../model/gemma-3-270m': unknown model",
        ),
        Case(
            "preset_is_a_path",
            ["configurations=[{preset: ../method/self_moa}]", *common],
            2,
            r"configurations\[0\].preset='../method/self_moa' is not a method preset",
        ),
        Case(
            "reserved_label",
            ["method.label=single", *common],
            2,
            r"label 'single' is reserved for the greedy baseline",
        ),
        Case(
            "reserved_label_in_a_study_row",
            ["configurations=[{name: usc, k: 2, label: single}]", *common],
            2,
            r"label 'single' is reserved for the greedy baseline",
        ),
        Case("empty_store_dir", [*common, "store_dir="], 2, r"store_dir is empty"),
        Case(
            "data_dir_a_fifo",
            [*common, f"benchmark.data_dir={special / 'fifo'}"],
            2,
            r"benchmark.data_dir='.*fifo' is a FIFO \(named pipe\)",
        ),
        Case(
            "data_dir_a_symlink_loop",
            [*common, f"benchmark.data_dir={special / 'loop'}"],
            2,
            r"benchmark.data_dir='.*loop' is a symlink loop",
        ),
        Case(
            "data_file_a_fifo",
            [*common, f"benchmark.data_dir={special / 'fifo_data'}"],
            2,
            r"gsm8k/test.jsonl is a FIFO \(named pipe\), not a data file",
        ),
        Case(
            "data_file_a_symlink_loop",
            [*common, f"benchmark.data_dir={special / 'loop_data'}"],
            2,
            r"gsm8k/test.jsonl is a symlink loop, not a data file",
        ),
        Case(
            "model_folder_without_weights",
            [*common, "model=qwen2-7b-instruct", f"model.path={special / 'noweights'}"],
            2,
            r"model.path='.*noweights': the model folder holds no weights",
        ),
        Case(
            "served_concurrency_abc",
            [*common, *SERVED, "engine.kwargs.concurrency=abc"],
            2,
            r"engine.kwargs.concurrency .*Value 'abc'",
        ),
        Case(
            "served_timeout_nan",
            [*common, *SERVED, "engine.kwargs.timeout_s=nan"],
            2,
            r"engine.kwargs.timeout_s must be a finite number > 0 \(got nan\)",
        ),
        Case(
            "served_urls_file_empty",
            [*common, "engine=openai", f"engine.kwargs.urls_file={special / 'urls'}"],
            2,
            r"engine.kwargs.urls_file='.*urls' is empty: no base URL",
        ),
        Case(
            "served_urls_file_a_fifo",
            [*common, "engine=openai", f"engine.kwargs.urls_file={special / 'fifo'}"],
            2,
            r"engine.kwargs.urls_file='.*fifo': it is a FIFO \(named pipe\), not a file",
        ),
        Case(
            "served_url_not_http",
            [*common, "engine=openai", "engine.kwargs.base_urls=[ftp://host/v1]"],
            2,
            r"engine.kwargs.base_urls: 'ftp://host/v1' is not an http\(s\):// URL",
        ),
        Case(
            "engine_argument_unknown",
            [*common, "+engine.kwargs.max_model_lenn=64"],
            2,
            r"engine.kwargs.max_model_lenn \(engine cpu\) is not a vLLM engine argument "
            r"\(EngineArgs\); did you mean max_model_len\?",
        ),
        Case(
            "engine_argument_dtype",
            [*common, "engine.kwargs.dtype=nope"],
            2,
            r"engine.kwargs.dtype='nope' \(engine cpu\): vLLM allows 'auto'",
        ),
        Case(
            "engine_argument_set_by_the_harness",
            [*common, "+engine.kwargs.seed=3"],
            2,
            r"engine.kwargs.seed \(engine cpu\): set by the harness",
        ),
        Case(
            "wandb_online_without_a_key",
            [*common, "logger.mode=online"],
            2,
            r"logger.mode=online needs a W&B API key: set WANDB_API_KEY or run `wandb login`",
            env={"WANDB_API_KEY": "", "NETRC": str(special / "no-netrc")},
        ),
        Case(
            "sweep_with_an_invalid_point",
            ["-m", "method.k=2,0,3", f"hydra.sweep.dir={root / 'sweep_bad'}", *common],
            2,
            r"1 of 3 sweep points are invalid, none was run: point 1 \(method.k=0\): method.k",
        ),
        Case(
            "sweep_with_a_reserved_label",
            ["-m", "method.label=mine,single", f"hydra.sweep.dir={root / 'sweep_label'}"] + common,
            2,
            r"point 1 \(method.label=single\): label 'single' is reserved",
        ),
    ]


CONFIG_CASES = [c.name for c in config_cases(Path("/r"), [])]


@pytest.fixture(scope="module")
def config_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("names")
    data = write_gsm8k(root / "data")
    special = root / "special"
    special.mkdir()
    os.mkfifo(special / "fifo")
    (special / "loop").symlink_to(special / "loop")
    for name in ("fifo_data", "loop_data"):
        (special / name / "gsm8k").mkdir(parents=True)
    os.mkfifo(special / "fifo_data" / "gsm8k" / "test.jsonl")
    loop = special / "loop_data" / "gsm8k" / "test.jsonl"
    loop.symlink_to(loop)
    (special / "noweights").mkdir()
    (special / "noweights" / "config.json").write_text("{}")
    (special / "urls").write_text("\n  \n")
    common = [
        f"benchmark.data_dir={data}",
        f"store_dir={root / 'store'}",
        "logger.mode=disabled",
        "model=smollm2-135m-instruct",
    ]
    cases = config_cases(root, common)
    for i, case in enumerate(cases):
        case.args = [*case.args, f"hydra.run.dir={root / 'runs' / str(i)}"]
        (root / "cases" / case.name / "launch").mkdir(parents=True)
    from harness.engines.vllm_args import engine_fields

    engine_fields()  # vLLM's schema imported once here, not in every forked case
    before = tree(special)
    results = run_cases(cases, root / "cases")
    return root, cases, results, before


@pytest.mark.parametrize("name", CONFIG_CASES)
def test_a_bad_name_path_setting_or_point_is_one_line(config_results, name):
    root, cases, results, before = config_results
    case = next(c for c in cases if c.name == name)
    one_clear_line(results[name], case.status, case.message)
    assert tree(root / "cases" / name / "launch") == {}  # nothing in the launch directory
    assert tree(root / "special") == before
    store = root / "store"
    assert not store.exists() or not list(store.glob("*.jsonl"))  # nothing generated
    assert not (root / "sweep_bad").exists() and not (root / "sweep_label").exists()


def test_the_batteries_hold_at_least_40_new_cases():
    from tests.test_served_faults import MALFORMED

    here = len(DIR_CASES) + len(CONFIG_CASES) + 3  # + the held, read-only and unset tests
    served = len(MALFORMED) + 1  # tests/test_served_faults.py, with the interrupted stage
    assert here >= 35 and here + served + 2 >= 40  # + tests/test_interrupts.py's signals
