"""The generation store: keys, shards, locks, verification of every line, file-system faults."""

import json
import logging
import threading
import time
from pathlib import Path

import pytest

from harness.benchmarks import get
from harness.config import ModelConfig, RunConfig
from harness.errors import PathError
from harness.methods import knobs
from harness.plan import configurations
from harness.store import TORN_TAILS, Store, checksum, generation_key
from tests.conftest import FakeEngine, fake_slot, generation, run_execute
from tests.faults import assert_kept, remount_read_only, snapshot, tmpfs

GOLDEN = Path(__file__).parent / "data" / "golden" / "store"
SHARD_A, SHARD_B = "host-1-0000000a.jsonl", "host-2-0000000b.jsonl"


def line(key: str, text: str, **extra) -> str:
    return json.dumps(generation(key, text).to_json() | extra)


def write_shard(root: Path, name: str, *lines: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    path.write_text("".join(x + "\n" for x in lines))
    return path


def test_generation_key_ignores_seed_and_n_but_not_temperature():
    from harness.engines import Sampling

    conv = [{"role": "user", "content": "q"}]
    a = Sampling(n=4, temperature=0.7, seed=1).generation_fields()
    b = Sampling(n=8, temperature=0.7, seed=99).generation_fields()
    c = Sampling(n=4, temperature=0.2, seed=1).generation_fields()
    assert generation_key("m", conv, a, 5, 0) == generation_key("m", conv, b, 5, 0)
    assert generation_key("m", conv, a, 5, 0) != generation_key("m", conv, c, 5, 0)
    assert generation_key("m", conv, a, 5, 0) != generation_key("m", conv, a, 5, 1)
    assert generation_key("m", conv, a, 5, 0) != generation_key("m2", conv, a, 5, 0)


def test_golden_store_of_the_old_code_is_served_and_left_untouched():
    before = sorted(p.name for p in GOLDEN.iterdir())
    store = Store(GOLDEN)
    shards = sorted(GOLDEN.glob("*.jsonl"))
    lines = [json.loads(x) for p in shards for x in p.read_text().splitlines()]
    assert "checksum" not in lines[0]  # written before checksums existed
    assert len(store) == len({x["key"] for x in lines}) > 0
    assert (store.torn, store.invalid, store.conflicts) == (0, 0, 0)
    assert all(store.get(x["key"]).text == x["text"] for x in lines)
    assert sorted(p.name for p in GOLDEN.iterdir()) == before  # no shard, no locks


def test_concurrent_writers_use_separate_shards_created_at_first_write(tmp_path):
    a, b = Store(tmp_path), Store(tmp_path)
    assert a.shard != b.shard and not a.shard.exists()
    a.put([generation("k1", "x")])
    b.put([generation("k2", "y")])
    c = Store(tmp_path)
    assert {c.get("k1").text, c.get("k2").text} == {"x", "y"} and c.torn == 0


def test_written_lines_carry_a_checksum_and_a_time(tmp_path):
    store = Store(tmp_path)
    store.put([generation("k", "text")])
    stored = json.loads(store.shard.read_text())
    assert stored["checksum"] == checksum(stored) and stored["written"] <= time.time()
    assert Store(tmp_path).get("k") == generation("k", "text")


def test_a_line_whose_checksum_fails_is_torn_and_not_served(tmp_path, caplog):
    store = Store(tmp_path)
    store.put([generation("k", "the right answer"), generation("j", "other")])
    store.shard.write_text(store.shard.read_text().replace("the right", "a wrong"))
    reopened = Store(tmp_path)
    assert reopened.get("k") is None and reopened.get("j") and reopened.torn == 1
    assert f"{store.shard}:1 (checksum mismatch)" in caplog.text


def test_store_skips_a_torn_last_record_and_regenerates_it(bench_cfg, tmp_path, caplog):
    models = {n: ModelConfig(name=n, path=f"org/{n}", revision="r1") for n in ("small",)}
    bench, calls = get(bench_cfg), []
    items = bench.load()
    slot = fake_slot(models, lambda m: FakeEngine(m.name, calls))
    run = RunConfig(model=models["small"], method=knobs("single"), baseline=False)
    confs = configurations(run)
    store = Store(tmp_path / "store")
    run_execute(confs, items, bench, slot, store, seed=0)
    text = store.shard.read_text()
    store.shard.write_text(text[: len(text) - 25])  # crash in the middle of the last record
    reopened = Store(store.root)
    assert reopened.torn == 1 and len(reopened) == len(items) - 1
    assert "torn" in caplog.text
    calls.clear()
    records, stages = run_execute(confs, items, bench, slot, reopened, seed=0)
    assert stages[0].made == 1 and len(calls[0][1]) == 1


def test_refresh_reads_only_new_whole_lines(tmp_path):
    reader = Store(tmp_path)
    shard = tmp_path / SHARD_A
    a, b = line("a", "y"), line("b", "y")
    shard.write_text(a + "\n" + b[:20])  # b being written
    reader.refresh()
    assert reader.get("a") and reader.get("b") is None and reader.torn == 1
    with shard.open("a") as f:
        f.write(b[20:] + "\n")
    reader.refresh()
    assert reader.get("b") == generation("b", "y") and reader.torn == 1


def test_claim_waits_for_the_holder_then_sees_its_records(tmp_path):
    holder, waiter = Store(tmp_path), Store(tmp_path)
    seen = []

    def wait_and_read():
        with waiter.claim(["propose-x"]):
            seen.append(waiter.get("k1"))

    with holder.claim(["propose-x"]):
        thread = threading.Thread(target=wait_and_read)
        thread.start()
        time.sleep(0.3)
        assert thread.is_alive() and not seen  # blocked on the lock
        holder.put([generation("k1", "made once")])
    thread.join(5)
    assert [g.text for g in seen] == ["made once"]


BAD_TYPES = [
    ({"key": 5}, "'key' is not of type str"),
    ({"key": ""}, "'key' is empty"),
    ({"text": None}, "'text' is not of type str"),
    ({"text": ["a"]}, "'text' is not of type str"),
    ({"tokens": "5"}, "'tokens' is not of type int"),
    ({"sample_index": True}, "'sample_index' is not of type int"),
    ({"finish_reason": 3}, "'finish_reason' is not of type str | None"),
]


@pytest.mark.parametrize("change, reason", BAD_TYPES)
def test_a_line_with_wrong_types_is_skipped_counted_and_named(tmp_path, caplog, change, reason):
    bad = generation("bad", "x").to_json() | change
    shard = write_shard(tmp_path, SHARD_A, line("good", "y"), json.dumps(bad))
    store = Store(tmp_path)
    assert store.get("good") and len(store) == 1 and store.invalid == 1 and store.torn == 0
    assert f"{shard}:2 ({reason})" in caplog.text


@pytest.mark.parametrize(
    "bad, counter",
    [('{"key": "k"', "torn"), ("[1, 2]", "invalid"), ('"text"', "invalid"), ("[" * 10**5, "torn")],
)
def test_a_line_that_is_not_a_record_is_skipped(tmp_path, bad, counter):
    write_shard(tmp_path, SHARD_A, bad, line("good", "y"))
    store = Store(tmp_path)
    assert store.get("good") and getattr(store, counter) == 1


def test_a_missing_text_is_skipped(tmp_path, caplog):
    bad = generation("bad", "x").to_json()
    del bad["text"]
    shard = write_shard(tmp_path, SHARD_A, json.dumps(bad))
    assert Store(tmp_path).invalid == 1 and f"{shard}:1 ('text' is missing)" in caplog.text


def test_undecodable_bytes_are_a_torn_line_not_a_crash(tmp_path):
    write_shard(tmp_path, SHARD_A, line("good", "y"))
    with (tmp_path / SHARD_A).open("ab") as f:
        f.write(b'{"key": "\xff\xfe"}\n\x00\x00\x00\n')
    store = Store(tmp_path)
    assert store.get("good") and store.torn == 2


def test_blank_lines_are_not_torn(tmp_path):
    write_shard(tmp_path, SHARD_A, "", line("a", "x"), "   ", "", line("b", "y"), "\t")
    with (tmp_path / SHARD_A).open("a") as f:
        f.write("  ")  # a blank unterminated tail
    store = Store(tmp_path)
    assert len(store) == 2 and (store.torn, store.invalid) == (0, 0)


def test_a_torn_tail_is_warned_once_then_only_counted(tmp_path, caplog):
    write_shard(tmp_path, SHARD_A, line("a", "x"))
    with (tmp_path / SHARD_A).open("a") as f:
        f.write(line("b", "y")[:30])
    assert Store(tmp_path).torn == 1
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and (tmp_path / TORN_TAILS).exists()
    caplog.clear()
    again = Store(tmp_path)
    assert again.torn == 1 and again.get("a")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_same_key_with_different_texts_serves_the_earliest_written(tmp_path, caplog):
    write_shard(tmp_path, SHARD_A, line("k", "later", written=200.0))
    write_shard(tmp_path, SHARD_B, line("k", "earlier", written=100.0))
    store = Store(tmp_path)
    assert store.get("k").text == "earlier" and store.conflicts == 1
    assert f"{SHARD_A}:1" in caplog.text and f"{SHARD_B}:1" in caplog.text


def test_a_line_from_before_written_times_counts_as_earliest(tmp_path):
    write_shard(tmp_path, SHARD_A, line("k", "new", written=100.0))
    write_shard(tmp_path, SHARD_B, line("k", "old"))
    assert Store(tmp_path).get("k").text == "old"


def test_the_same_key_with_the_same_text_twice_is_no_conflict(tmp_path, caplog):
    write_shard(tmp_path, SHARD_A, line("k", "same", written=1.0))
    write_shard(tmp_path, SHARD_B, line("k", "same", written=2.0))
    store = Store(tmp_path)
    assert store.conflicts == 0 and len(store) == 1 and "different texts" not in caplog.text


def test_a_conflict_arriving_later_is_detected_on_refresh(tmp_path, caplog):
    store = Store(tmp_path)
    store.put([generation("k", "mine")])
    write_shard(tmp_path, SHARD_A, line("k", "theirs", written=1.0))
    store.refresh()
    assert store.conflicts == 1 and store.get("k").text == "theirs"


def test_a_store_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "store").write_text("x")
    with pytest.raises(PathError, match="it is a file, not a directory") as e:
        Store(tmp_path / "store")
    assert e.value.which == "store" and e.value.path == str(tmp_path / "store")


def test_an_empty_store_path_is_refused():
    with pytest.raises(PathError, match="HARNESS_STORE_DIR"):
        Store("")


def test_a_store_path_below_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(PathError, match="store directory .*creating it"):
        Store(tmp_path / "file" / "store")


def test_a_folder_holding_other_files_is_refused(tmp_path, data_dir):
    (data_dir / "README.md").write_text("data")
    with pytest.raises(PathError, match=r"not store shards \(README.md, gsm8k/\).*data folder"):
        Store(data_dir)
    with pytest.raises(PathError, match=r"not store shards \(test.jsonl\)"):
        Store(data_dir / "gsm8k")
    assert sorted(p.name for p in data_dir.iterdir()) == ["README.md", "gsm8k"]


def test_locks_and_hidden_files_belong_to_a_store(tmp_path):
    store = Store(tmp_path)
    with store.claim(["s"]):
        store.put([generation("k", "x")])
    (tmp_path / ".nfs000123").write_text("")
    assert Store(tmp_path).get("k")


def test_a_complete_store_is_served_from_a_read_only_file_system(tmp_path):
    with tmpfs(tmp_path / "fs", "1m") as fs:
        store = Store(fs / "store")
        store.put([generation("k", "x")])
        with (store.shard).open("a") as f:
            f.write(line("t", "torn")[:10])
        remount_read_only(fs)
        before = snapshot(fs / "store")
        ro = Store(fs / "store")
        assert not ro.writable and ro.get("k").text == "x" and ro.torn == 1
        with ro.claim(["stream"]):  # no locks/ needed when nothing is written
            assert ro.get("k")
        with pytest.raises(PathError, match="read-only; generations cannot be stored"):
            ro.require_writable()
        with pytest.raises(PathError, match="read-only while creating its shard"):
            ro.put([generation("j", "y")])
        assert_kept(before, fs / "store")
        assert not (fs / "store" / "locks").exists()


def test_a_full_disk_is_a_path_error_and_leaves_only_whole_lines(tmp_path):
    with tmpfs(tmp_path / "fs", "64k") as fs:
        store = Store(fs / "store")
        store.put([generation("first", "x")])
        before = snapshot(fs / "store")
        with pytest.raises(PathError, match="the disk is full while writing generations") as e:
            for i in range(100):
                store.put([generation(f"k{i}", "y" * 8000)])
        assert e.value.which == "store" and e.value.path == str(fs / "store")
        assert_kept(before, fs / "store")
        reread = Store(fs / "store")
        assert reread.torn == 0 and reread.get("first") and len(reread) == len(store)
        assert not list((fs / "store").glob("*.tmp"))


def test_a_claim_whose_locks_cannot_be_created_still_serves(tmp_path):
    store = Store(tmp_path)
    store.put([generation("k", "x")])
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks" / "s").mkdir()  # the lock file cannot be opened
    with store.claim(["s"]):
        assert store.get("k").text == "x"


def test_a_child_forked_during_a_claim_does_not_keep_the_stream_lock(tmp_path):
    import fcntl
    import os

    store = Store(tmp_path)
    with store.claim(["s"]):
        ready, go = os.pipe()
        pid = os.fork()
        if pid == 0:  # like vLLM's engine process, loaded while the claim is held
            os.write(go, b"x")  # fork handlers have run
            time.sleep(3)
            os._exit(0)
        os.read(ready, 1)
    try:
        fd = os.open(tmp_path / "locks" / "s", os.O_WRONLY)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free although the child lives
        os.close(fd)
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def test_aggregation_locks_name_their_prompts_and_proposal_locks_their_stream():
    from harness.engines import Sampling
    from harness.generate import stage_locks

    p = Sampling(n=1, temperature=0.7, max_tokens=64)
    a = [([{"role": "user", "content": "aggregate A"}], p)]
    b = [([{"role": "user", "content": "aggregate B"}], p)]
    missing = [[None]]
    assert stage_locks("aggregate", "m", a, missing) != stage_locks("aggregate", "m", b, missing)
    assert stage_locks("aggregate", "m", a, missing) == stage_locks("aggregate", "m", a, missing)
    assert stage_locks("propose", "m", a, missing) == stage_locks("propose", "m", b, missing)


def test_a_job_aggregating_other_prompts_does_not_wait_for_a_held_aggregation(tmp_path):
    """Another job holds the lock of its aggregation stage; this job's stage (other prompts,
    same model and sampling) generates at once instead of waiting for it."""
    import threading

    from harness.config import ModelConfig
    from harness.engines import Sampling
    from harness.generate import Generator, stage_locks
    from tests.conftest import FakeEngine, fake_slot

    models = {"m": ModelConfig(name="m", path="org/m", revision="r1")}
    gen = Generator(fake_slot(models, lambda m: FakeEngine(m.name, [])), Store(tmp_path), seed=0)
    p = Sampling(n=1, temperature=0.7, max_tokens=64)
    theirs = [([{"role": "user", "content": "their aggregation"}], p)]
    mine = [([{"role": "user", "content": "my aggregation"}], p)]
    other = Store(tmp_path)  # the other job's handle on the same store
    with other.claim(stage_locks("aggregate", gen.slot.identity("m"), theirs, [[None]])):
        done = threading.Event()
        worker = threading.Thread(target=lambda: (gen.stage("aggregate", "m", mine), done.set()))
        worker.start()
        assert done.wait(30), "the stage waited for another job's unrelated aggregation"
    worker.join()
