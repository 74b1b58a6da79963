"""Engine lifecycle logic (harness.engines.lifecycle): room on CUDA before a load, a real end.

The CUDA path cannot run here: its decisions are tested with a monkeypatched
`torch.cuda.mem_get_info` and nvidia-smi's output. The child-process ending is tested with real
processes; the RSS of real swaps is tests/test_swap_memory.py's (slow).
"""

import logging
import os
import subprocess
import sys
import time

import psutil
import pytest
import torch

from harness.engines import lifecycle
from harness.engines.lifecycle import Footprint, GiB, check_room, cuda_need
from harness.errors import ResourceError, one_line

SMI = "{pid}, /usr/bin/python3, 61440\n777, /opt/other/serve, 8192\n"


@pytest.fixture
def h100(monkeypatch):
    """An 80 GiB device with `state['free']` bytes free (read through torch, NVML absent)."""
    state = {"free": 70 * GiB}
    monkeypatch.setattr(lifecycle, "nvml_free_total", lambda index: None)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index=0: (state["free"], 80 * GiB))
    return state


def test_a_model_that_fits_loads(h100):
    check_room("qwen2-7b-instruct", {"gpu_memory_utilization": 0.8}, devices=[0])


def test_too_little_free_memory_is_one_line_naming_the_holders(h100, monkeypatch):
    h100["free"] = 10 * GiB
    monkeypatch.setattr(
        lifecycle.subprocess, "run",
        lambda *a, **k: subprocess.CompletedProcess(a, 0, stdout=SMI.format(pid=os.getpid())),
    )  # fmt: skip
    with pytest.raises(ResourceError) as e:
        check_room("qwen2-7b-instruct", {"gpu_memory_utilization": 0.9}, devices=[0])
    line = one_line(e.value)
    assert "\n" not in line and line.startswith("error: model qwen2-7b-instruct needs 72.0 GiB")
    assert "only 10.0 of 80.0 GiB are free" in line
    assert f"pid {os.getpid()} (python3, this process) 60.0 GiB; pid 777 (serve) 8.0 GiB" in line
    assert "engine.kwargs.gpu_memory_utilization" in line


def test_without_nvidia_smi_the_line_says_how_much_is_held(h100, monkeypatch):
    h100["free"] = 5 * GiB
    monkeypatch.setattr(lifecycle, "gpu_holders", lambda own: [])
    with pytest.raises(ResourceError, match="others hold 75.0 GiB"):
        check_room("m", {}, devices=[0], holders=lifecycle.gpu_holders)


def test_the_need_is_the_kv_cache_plus_the_weights_when_the_cache_is_sized(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 4096)
    kwargs = {"kv_cache_memory_bytes": 10_000, "tensor_parallel_size": 2}
    assert cuda_need(kwargs, 80 * GiB, str(tmp_path)) == 10_000 + 2048
    assert cuda_need({}, 80 * GiB) == int(0.9 * 80 * GiB)  # vLLM's default utilization
    assert cuda_need({"gpu_memory_utilization": 0.5}, 80 * GiB, "org/hub-id") == 40 * GiB


def test_no_cuda_device_means_no_check(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert lifecycle.cuda_devices(4) == []
    check_room("m", {"gpu_memory_utilization": 0.99})  # nothing read, nothing raised


def test_nvml_reads_the_device_cuda_visible_devices_names(monkeypatch):
    seen = []

    class Nvml:
        def nvmlDeviceGetHandleByIndex(self, i):  # noqa: N802 - NVML's names
            seen.append(("index", i))

        def nvmlDeviceGetHandleByUUID(self, u):  # noqa: N802
            seen.append(("uuid", u))

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    lifecycle._nvml_device(Nvml(), 1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-abc")
    lifecycle._nvml_device(Nvml(), 0)
    assert seen == [("index", 1), ("uuid", "GPU-abc")]


def test_a_close_waits_for_the_memory_and_warns_when_it_does_not_come_back(caplog):
    levels = iter([3 * GiB, 2 * GiB, int(1.2 * GiB)] + [int(1.2 * GiB)] * 1000)
    fp = Footprint("m", [], GiB, set(), read=lambda: next(levels))
    assert fp.wait_back(wait_s=5, poll_s=0) == pytest.approx(0.2)  # back after three polls
    stuck = Footprint("m", [], 0, set(), read=lambda: 2 * GiB)
    with caplog.at_level(logging.WARNING):
        assert stuck.wait_back(wait_s=0.3, poll_s=0.05) == 2.0
    assert "2.00 GiB (RSS) are still held above the level before it loaded" in caplog.text


def test_an_engine_process_that_ignores_its_shutdown_is_killed():
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
    quits = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    hangs = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(0.5)  # SIG_IGN installed
        assert lifecycle.end_children({quits.pid, hangs.pid}, timeout=1) == [hangs.pid]
        assert not psutil.pid_exists(hangs.pid)  # killed and reaped
    finally:
        hangs.kill()
        quits.wait()


def test_end_shuts_the_engine_down_then_ends_its_children():
    fp = Footprint("m", [], 10 * GiB, lifecycle.child_pids(), read=lambda: 10 * GiB)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    fp.loaded()
    assert child.pid in fp.children
    calls = []
    assert fp.end(lambda: calls.append(child.terminate())) == 0.0
    assert calls and child.wait(timeout=10) is not None and not psutil.pid_exists(child.pid)


def test_a_failing_shutdown_still_ends_the_children(caplog):
    fp = Footprint("m", [], 0, lifecycle.child_pids(), read=lambda: 0, exit_s=0.5)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    fp.loaded()
    assert fp.children == {child.pid}

    def dead_core():
        raise RuntimeError("engine core died")

    try:
        with caplog.at_level(logging.WARNING):
            fp.end(dead_core)
        assert child.poll() is not None
        assert "engine shutdown failed (engine core died)" in caplog.text
    finally:
        child.kill()


def test_malloc_trim_reaches_glibc():
    assert lifecycle.malloc_trim() is not None  # None: libc.so.6 or its malloc_trim not found
    assert lifecycle.process_tree_rss() > 0


def test_each_device_preset_keeps_the_engine_core_where_its_memory_comes_back():
    """scripts/swap_memory.py's finding: on CPU in-process returns within 0.5 GiB after the
    fix (and starts in seconds); on GPU the child process, whose exit frees the device."""
    from harness.engines.factory import load_engine_config

    assert load_engine_config("cpu").env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    assert load_engine_config("gpu").env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "1"


def test_a_closed_engines_tokenizer_pool_lets_its_copies_go():
    """vLLM's thread-safe wrapper keeps deep copies of the tokenizer in closures of a class made
    for it; while anything holds that class (here: `kept`, as a cache keyed by type would), the
    copies stay unless `empty_tokenizer_pool` drops them."""
    import gc

    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast
    from vllm.tokenizers.hf import maybe_make_thread_pool

    def alive() -> int:
        gc.collect()
        return sum(type(o) is PreTrainedTokenizerFast for o in gc.get_objects())

    before = alive()

    def tokenizer() -> PreTrainedTokenizerFast:
        vocab = {"a": 0, "b": 1, "[UNK]": 2}
        return PreTrainedTokenizerFast(
            tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
        )

    tok = tokenizer()
    maybe_make_thread_pool(tok, 2)
    assert tok.convert_tokens_to_ids("b") == 1  # served by a copy from the pool
    kept = type(tok)
    assert alive() - before == 3  # the original's shallow copy and two deep copies
    assert lifecycle.empty_tokenizer_pool(tok) == 3
    del tok
    assert alive() == before, kept
    plain = tokenizer()
    assert lifecycle.empty_tokenizer_pool(plain) == 0  # not wrapped: untouched
    assert plain.convert_tokens_to_ids("b") == 1
