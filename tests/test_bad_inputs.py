"""Bad-input battery for data files, store corruption, environment and file-system faults.

Every case ends in one of two ways, as a user sees it at the entry point: a `ConfigError`
(printed as one line, exit status 2) whose message names the problem, or a clean load whose
bad parts are counted and named by file:line. Never another exception (a traceback), and every
store record present before a case is still present and unchanged after it.
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import benchmarks
from harness.benchmarks import get
from harness.environment import check_environment
from harness.errors import ConfigError, DataError, PathError
from harness.rundir import RunDir, release
from harness.store import Store
from tests.conftest import generation, write_gsm8k
from tests.faults import assert_kept, remount_read_only, snapshot, tmpfs

ROOT = Path(__file__).resolve().parent.parent

GOOD = {  # one valid line of each JSONL benchmark, and its file under the data folder
    "gsm8k": ("gsm8k/test.jsonl", {"question": "1+1?", "answer": "1+1=2\n#### 2"}),
    "math500": ("math500/test.jsonl", {"problem": "1+1?", "answer": "2", "solution": "2"}),
    "cruxeval": (
        "cruxeval/cruxeval.jsonl",
        {"code": "def f(x):\n    return x", "input": "1", "output": "1", "id": "s0"},
    ),
    "mt_bench": (
        "mt_bench/question.jsonl",
        {"question_id": 1, "category": "writing", "turns": ["Write.", "Shorter."]},
    ),
}


def fails_cleanly(action: Callable, *fragments: str) -> ConfigError:
    """`action` raises a one-line ConfigError holding every fragment (the exit-2 path)."""
    with pytest.raises(ConfigError) as e:
        action()
    message = str(e.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return e.value


def data_folder(tmp_path: Path, name: str, body: bytes | None = None) -> tuple[Path, Path]:
    """A data folder with `name`'s file holding two good lines, then `body` (if given)."""
    relative, record = GOOD[name]
    path = tmp_path / "data" / relative
    path.parent.mkdir(parents=True)
    good = (json.dumps(record) + "\n").encode()
    path.write_bytes(good * 2 + (body or b""))
    return tmp_path / "data", path


def load(name: str, data: Path | None, **kw):
    bench = get(benchmarks.knobs(name=name, data_dir=data and str(data), limit=None, **kw))
    return bench, bench.load()


# ---- data files -----------------------------------------------------------------------------

BAD_BODIES = {
    "latin-1 byte": (b'{"question": "caf\xe9"}\n', "not UTF-8 (byte 0xe9 at column 18)"),
    "lone continuation byte": (b"\x80\n", "not UTF-8 (byte 0x80 at column 1)"),
    "binary junk": (bytes(range(128, 256)) + b"\n", "not UTF-8"),
    "NUL bytes": (b"\x00\x00\x00\n", "not JSON"),
    "truncated object": (b'{"question": "x\n', "not JSON"),
    "a JSON list": (b"[1, 2]\n", "not a JSON object"),
    "deep nesting": (b"[" * 100000 + b"\n", "not JSON"),
}


@pytest.mark.parametrize("name", sorted(GOOD))
@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_a_bad_line_is_malformed_with_its_file_and_line(tmp_path, name, case):
    body, reason = BAD_BODIES[case]
    data, path = data_folder(tmp_path, name, body)
    bench, items = load(name, data)
    assert len(items) == 2
    assert len(bench.report.skipped) == 1
    assert bench.report.skipped[0].startswith(f"{path}:3: {reason}")


@pytest.mark.parametrize("name", sorted(GOOD))
def test_a_binary_data_file_is_all_malformed_lines_not_a_crash(tmp_path, name):
    data, path = data_folder(tmp_path, name)
    path.write_bytes(os.urandom(4096) + b"\n\xff\xfe\x00\n")
    bench, items = load(name, data)
    assert items == [] and bench.report.skipped
    assert all(s.startswith(f"{path}:") for s in bench.report.skipped)


def test_a_byte_order_mark_is_not_a_malformed_line(tmp_path):
    data, path = data_folder(tmp_path, "gsm8k")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert len(load("gsm8k", data)[1]) == 2


@pytest.mark.parametrize("name", sorted(GOOD))
def test_a_data_path_that_is_a_directory_is_one_clear_error(tmp_path, name):
    data, path = data_folder(tmp_path, name)
    path.unlink()
    path.mkdir()
    fails_cleanly(lambda: load(name, data), str(path), "is not a file")


@pytest.mark.parametrize("name", ["gsm8k", "math500"])
def test_a_missing_split_is_one_clear_error_at_once(tmp_path, name):
    data, path = data_folder(tmp_path, name)
    start = time.monotonic()
    fails_cleanly(
        lambda: load(name, data, split="train", hub_id="org/nowhere"),
        str(path.parent / "train.jsonl"),
        "holds: test.jsonl",
        "not tried (benchmark.data_dir=",
    )
    assert time.monotonic() - start < 2


@pytest.mark.parametrize(
    "name", ["gsm8k", "math500", "cruxeval", "mt_bench", "mmlu", "alpaca_eval"]
)
def test_a_missing_file_in_an_existing_data_folder_never_tries_the_hub(tmp_path, name):
    (tmp_path / "data").mkdir()
    start = time.monotonic()
    fails_cleanly(lambda: load(name, tmp_path / "data", hub_id="org/nowhere"), "not tried")
    assert time.monotonic() - start < 2


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"])
def test_offline_without_a_data_folder_is_one_error_naming_the_paths_tried(
    tmp_path, monkeypatch, variable
):
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):  # another test may have set one
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, "1")
    fails_cleanly(
        lambda: load("gsm8k", None, hub_id="org/nowhere"),
        "gsm8k/test.jsonl",
        f"not tried ({variable} is set)",
    )


def test_a_configured_data_folder_that_does_not_exist_is_one_error(tmp_path):
    fails_cleanly(
        lambda: load("gsm8k", tmp_path / "absent", hub_id="org/nowhere"),
        f"benchmark.data_dir='{tmp_path / 'absent'}' does not exist",
        "benchmark.data_dir=null to load from the hub",
    )


def test_a_data_folder_that_is_a_file_is_one_clear_error(tmp_path):
    (tmp_path / "data").write_text("x")
    fails_cleanly(lambda: load("gsm8k", tmp_path / "data"), "benchmark.data_dir=", "is a file")


MMLU_HEADER = b"question,choice0,choice1,choice2,choice3,answer\n"


@pytest.mark.parametrize(
    "row, reason",
    [
        (b"caf\xe9,a,b,c,d,0\n", "not UTF-8"),
        (b'"' + b"x" * 200000 + b'",a,b,c,d,0\n', "not CSV (field larger than field limit"),
    ],
)
def test_a_bad_mmlu_row_is_malformed_with_its_file_and_line(tmp_path, row, reason):
    folder = tmp_path / "data" / "mmlu" / "test"
    folder.mkdir(parents=True)
    path = folder / "anatomy_test.csv"
    path.write_bytes(MMLU_HEADER + b"Q1?,a,b,c,d,0\n" + row + b"Q2?,a,b,c,d,1\n")
    bench, items = load("mmlu", tmp_path / "data")
    assert len(items) == 2 and bench.report.skipped[0].startswith(f"{path}:3: {reason}")


@pytest.mark.parametrize("make", ["file", "empty folder"])
def test_an_mmlu_split_folder_without_csv_files_is_one_clear_error(tmp_path, make):
    folder = tmp_path / "data" / "mmlu" / "test"
    folder.parent.mkdir(parents=True)
    folder.write_text("x") if make == "file" else folder.mkdir()
    fails_cleanly(lambda: load("mmlu", tmp_path / "data"), str(folder))


def test_mmlu_redux_bytes_neither_utf8_nor_cp1252_are_malformed_rows(tmp_path):
    folder = tmp_path / "data" / "mmlu_redux"
    folder.mkdir(parents=True)
    path = folder / "mmlu_anatomy.csv"
    good = b"Q?,\"['a', 'b', 'c', 'd']\",0,ok\n"
    path.write_bytes(b"question,choices,answer,error_type\n" + good + b"Q\x81?,x,0,ok\n" + good)
    bench, items = load("mmlu_redux", tmp_path / "data")
    assert len(items) == 2 and bench.report.skipped == [f"{path}:3: not UTF-8"]


@pytest.mark.parametrize(
    "body, fragments",
    [
        (b"[{", ["is not valid JSON"]),
        (b'{"a": 1}', ["expected a JSON list"]),
        (b"\x00\x01binary", ["is not valid JSON"]),
    ],
)
def test_a_bad_alpaca_eval_file_is_one_clear_error(tmp_path, body, fragments):
    path = tmp_path / "data" / "alpaca_eval" / "results" / "gpt4_1106_preview"
    path.mkdir(parents=True)
    (path / "model_outputs.json").write_bytes(body)
    fails_cleanly(lambda: load("alpaca_eval", tmp_path / "data"), *fragments)


def test_a_non_utf8_alpaca_eval_record_is_malformed(tmp_path):
    path = tmp_path / "data" / "alpaca_eval" / "results" / "gpt4_1106_preview"
    path.mkdir(parents=True)
    records = [
        {"instruction": "Hi", "output": "Hello"},
        {"instruction": "caf\udce9", "output": "x"},
    ]
    text = json.dumps(records, ensure_ascii=False).encode("utf-8", errors="surrogateescape")
    (path / "model_outputs.json").write_bytes(text)
    bench, items = load("alpaca_eval", tmp_path / "data")
    assert len(items) == 1 and bench.report.skipped == [
        f"{path / 'model_outputs.json'}[1]: not UTF-8"
    ]


# ---- store corruption -----------------------------------------------------------------------

CORRUPTIONS = {
    "torn tail": b'{"key": "x", "te',
    "blank lines": b"\n\n   \n",
    "not UTF-8": b"\xff\xfe\n",
    "NUL bytes": b"\x00" * 64 + b"\n",
    "not JSON": b"garbage\n",
    "a list": b"[1]\n",
    "key a number": json.dumps(generation("k", "t").to_json() | {"key": 7}).encode() + b"\n",
    "text missing": json.dumps({"key": "k2", "model": "m"}).encode() + b"\n",
    "text a list": json.dumps(generation("k3", "t").to_json() | {"text": [1]}).encode() + b"\n",
    "checksum wrong": json.dumps(generation("k4", "t").to_json() | {"checksum": "0" * 64}).encode()
    + b"\n",
    "deep nesting": b"[" * 100000 + b"\n",
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_store_corruption_is_skipped_and_every_record_is_kept(tmp_path, case, caplog):
    store = Store(tmp_path / "store")
    originals = [generation(f"g{i}", f"text {i}") for i in range(5)]
    store.put(originals)
    before = snapshot(store.root)
    with store.shard.open("ab") as f:
        f.write(CORRUPTIONS[case])
    for _ in range(2):  # and again: nothing was changed by reading
        reread = Store(store.root)
        assert [reread.get(g.key) for g in originals] == originals
        assert len(reread) == len(originals)
    assert_kept(before, store.root)
    if case != "blank lines":
        assert f"{store.shard}:" in caplog.text
    else:
        assert (reread.torn, reread.invalid) == (0, 0)


def test_a_conflicting_copy_of_a_key_serves_the_first_written(tmp_path, caplog):
    store = Store(tmp_path / "store")
    store.put([generation("k", "first")])
    before = snapshot(store.root)
    later = Store(tmp_path / "store")
    later.records.clear()  # as if it had not seen the first copy
    later.put([generation("k", "second")])
    assert Store(tmp_path / "store").get("k").text == "first"
    assert "different texts" in caplog.text
    assert_kept(before, store.root)


# ---- file-system faults ---------------------------------------------------------------------


def test_store_dir_is_a_file(tmp_path):
    (tmp_path / "store").write_text("x")
    e = fails_cleanly(lambda: Store(tmp_path / "store"), "store directory", "is a file")
    assert e.which == "store"


def test_store_dir_is_the_data_folder(tmp_path):
    data = write_gsm8k(tmp_path / "data")
    fails_cleanly(lambda: Store(data), "store directory", "not store shards", "data folder")
    assert not (data / "locks").exists() and not list(data.glob("*.jsonl"))


def test_store_dir_read_only_serves_but_refuses_to_write(tmp_path):
    with tmpfs(tmp_path / "fs", "1m") as fs:
        Store(fs / "store").put([generation("k", "x")])
        before = snapshot(fs / "store")
        remount_read_only(fs)
        store = Store(fs / "store")
        with store.claim(["s"]):
            assert store.get("k").text == "x"
        fails_cleanly(lambda: store.put([generation("j", "y")]), "store directory", "read-only")
        assert_kept(before, fs / "store")


def test_store_disk_full(tmp_path):
    with tmpfs(tmp_path / "fs", "64k") as fs:
        store = Store(fs / "store")
        store.put([generation("k", "x")])
        before = snapshot(fs / "store")
        big = [generation(f"b{i}", "y" * 100000) for i in range(2)]
        fails_cleanly(lambda: store.put(big), "store directory", "disk is full")
        assert_kept(before, fs / "store")
        assert Store(fs / "store").torn == 0


def test_run_dir_held_by_another_live_run_through_the_entry_point(tmp_path):
    run_dir, data = tmp_path / "run", write_gsm8k(tmp_path / "data")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from harness.rundir import RunDir; RunDir({str(run_dir)!r}); "
            "import time; print('held', flush=True); time.sleep(60)",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = entry_point(tmp_path, f"hydra.run.dir={run_dir}", f"benchmark.data_dir={data}")
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "run directory" in proc.stderr and "another live run" in proc.stderr


@pytest.mark.parametrize("case", ["directory", "binary"])
def test_bad_data_files_through_the_entry_point(tmp_path, case):
    data = write_gsm8k(tmp_path / "data")
    path = data / "gsm8k" / "test.jsonl"
    path.unlink()
    if case == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"\x00\xff" * 500)
    proc = entry_point(tmp_path, f"hydra.run.dir={tmp_path / 'run'}", f"benchmark.data_dir={data}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert ("is not a file" if case == "directory" else "no items") in proc.stderr
    assert not list((tmp_path / "run").glob("*.tmp")) and not list(
        (tmp_path / "run").glob(".*.tmp")
    )


def entry_point(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    store = tmp_path / "store"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.run",
            f"store_dir={store}",
            "logger.mode=disabled",
            *overrides,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_run_dir_below_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    fails_cleanly(lambda: RunDir(tmp_path / "f" / "run"), "run directory", "creating it")


def test_run_dir_disk_full(tmp_path):
    with tmpfs(tmp_path / "fs", "64k") as fs:
        run = RunDir(fs / "run")
        try:
            fails_cleanly(lambda: run.write_metrics({"t": "x" * 100000}), "disk is full")
            assert sorted(p.name for p in run.path.iterdir()) == [".harness", ".lock"]
        finally:
            release(run.path)


def test_cache_dir_is_a_file(tmp_path, monkeypatch):
    from harness.models import cache_dir

    (tmp_path / "cache").write_text("x")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    e = fails_cleanly(cache_dir, "cache directory", "is a file")
    assert isinstance(e, PathError) and e.which == "cache"


# ---- environment ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, value, fragment",
    [
        ("HARNESS_PROGRESS_S", "soon", "must be a number"),
        ("HARNESS_PROGRESS_S", "-5", "must be a number"),
        ("HARNESS_DATA_DIR", "/nonexistent/data", "does not exist"),
        ("HARNESS_STORE_DIR", " runs/store", "leading or trailing spaces"),
    ],
)
def test_nonsense_environment_is_one_line_naming_the_variable(monkeypatch, name, value, fragment):
    monkeypatch.setenv(name, value)
    fails_cleanly(check_environment, f"{name}={value!r}", fragment)


def test_data_error_is_a_config_error():
    assert issubclass(DataError, ConfigError) and issubclass(PathError, ConfigError)
