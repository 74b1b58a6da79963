"""An in-process engine's life: room before it loads, a real end when it closes.

vLLM keeps a model's memory after its `LLM` object is deleted unless its engine is ended
explicitly (with multiprocessing off, deleting the object leaves the weights and KV cache
reachable: vLLM issue 21073; with it on, the memory goes only when the engine-core child process
exits). `Footprint` is taken before a model loads and ends it when the model closes:

    footprint = Footprint.before_load(name, device, tensor_parallel_size)  # the level now
    ... load; footprint.loaded() notes the engine's child processes ...
    footprint.end(shutdown)   # engine core shut down, children exited (waited for, with a
                              # timeout; killed if they hang), distributed state torn down,
                              # gc, CUDA cache emptied, glibc's free heap given back
                              # (malloc_trim), then waits (bounded) until the memory is back
                              # within RETURN_SLACK_GIB of the level before the load; warns if not

On CUDA, `check_room` compares each device's free memory with what the model will take
(`gpu_memory_utilization` x total, vLLM's rule, or the KV cache bytes plus the weights' files)
and raises ResourceError, one line naming what holds the memory (nvidia-smi's compute processes,
this process and its engine children marked), before vLLM would fail with a traceback.
Levels are read without creating a CUDA context in this process (NVML first), so vLLM can still
fork its engine core.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import queue
import subprocess
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from harness.errors import ResourceError

log = logging.getLogger(__name__)

GiB = 2**30
RETURN_SLACK_GIB = 0.5  # a closed model's memory counts as back within this of the level before
WAIT_S = 20.0  # how long a close waits for the memory to come back before it warns
CHILD_EXIT_S = 30.0  # how long the engine-core child has to exit before it is killed
DEFAULT_UTILIZATION = 0.9  # vLLM's default gpu_memory_utilization


def process_tree_rss(pid: int | None = None) -> int:
    """Resident bytes of a process and all its descendants (an engine core in a child counts)."""
    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:  # exited meanwhile
            pass
    return total


def child_pids() -> set[int]:
    return {c.pid for c in psutil.Process().children(recursive=True)}


def end_children(pids: set[int], timeout: float = CHILD_EXIT_S) -> list[int]:
    """Wait for `pids` to exit; terminate, then kill, those still alive. Returns those killed."""
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    killed = sorted(p.pid for p in alive)
    for p in alive:
        p.terminate()
    _, alive = psutil.wait_procs(alive, timeout=5)
    for p in alive:
        p.kill()
    psutil.wait_procs(alive, timeout=5)
    return killed


def teardown_distributed() -> None:
    """vLLM's model-parallel groups and torch.distributed's process group, if set up here."""
    try:
        from vllm.distributed.parallel_state import cleanup_dist_env_and_memory
    except ImportError:
        cleanup_dist_env_and_memory = None
    if cleanup_dist_env_and_memory is not None:
        try:
            cleanup_dist_env_and_memory()
        except Exception as e:  # never let a teardown step keep the next model from loading
            log.warning("vLLM distributed cleanup failed: %s", e)
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    except Exception as e:
        log.warning("torch.distributed teardown failed: %s", e)


def malloc_trim() -> bool | None:
    """Give glibc's free heap pages back to the system (freed tensors otherwise stay resident).
    Whether memory was released; None where the C library is not glibc."""
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return None


# vLLM memoises tokenizers and processors per model in module-level lru caches (128 entries):
# without clearing them every model loaded in this process keeps its tokenizer alive (measured:
# gemma-3-270m's held 0.26 GiB of RSS after its close).
VLLM_CACHES = (
    ("vllm.tokenizers.registry", "cached_get_tokenizer"),
    ("vllm.tokenizers.registry", "cached_resolve_tokenizer_args"),
    ("vllm.transformers_utils.processor", "cached_get_processor"),
)


def forget_vllm_caches() -> None:
    """Clear vLLM's per-model caches (only of modules already imported; none is imported here)."""
    for module, name in VLLM_CACHES:
        cached = getattr(sys.modules.get(module), name, None)
        if hasattr(cached, "cache_clear"):
            cached.cache_clear()


def _closure_cells(fn, depth: int = 3):
    """The closure cells of `fn` and of the functions it closes over (through `__wrapped__`)."""
    fn = getattr(fn, "__func__", fn)
    for cell in getattr(fn, "__closure__", None) or ():
        yield cell
        try:
            inner = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if depth and isinstance(inner, types.FunctionType):
            yield from _closure_cells(getattr(inner, "__wrapped__", inner), depth - 1)


def empty_tokenizer_pool(tokenizer) -> int:
    """Drop the tokenizer copies that vLLM's thread-safe wrapper holds. Returns how many went.

    `vllm.tokenizers.hf.maybe_make_thread_pool` gives a tokenizer a class of its own whose
    methods close over a queue of deep copies and the original; whatever still holds that class
    after the engine closes (a cache keyed by type) holds the copies too (measured before this:
    gemma-3-270m's close left six tokenizer objects alive). The wrapped tokenizer is unusable
    afterwards, which is what a closed engine's tokenizer should be.
    """
    cls = type(tokenizer)
    if not cls.__name__.startswith("TokenizerPool"):
        return 0
    dropped = 0
    for fn in list(vars(cls).values()):
        for cell in _closure_cells(fn):
            try:
                held = cell.cell_contents
            except ValueError:
                continue
            if isinstance(held, queue.Queue):
                while True:
                    try:
                        held.get_nowait()
                    except queue.Empty:
                        break
                    dropped += 1
            elif not isinstance(held, types.FunctionType) and hasattr(
                held, "convert_tokens_to_ids"
            ):
                cell.cell_contents = None
                dropped += 1
    return dropped


def release_memory() -> None:
    """Forget vLLM's per-model caches, collect garbage, empty the CUDA caching allocator (if CUDA
    is in use), trim the heap."""
    forget_vllm_caches()
    gc.unfreeze()  # vLLM's engine core freezes the objects of its start-up
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
    except ImportError:
        pass
    malloc_trim()


# ---------------------------------------------------------------- CUDA device memory ----


def _nvml_device(nvml, index: int):
    """The NVML handle of CUDA device `index` as this process sees it (CUDA_VISIBLE_DEVICES)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        entry = visible.split(",")[index].strip()
        if entry.startswith(("GPU-", "MIG-")):
            return nvml.nvmlDeviceGetHandleByUUID(entry)
        index = int(entry)
    return nvml.nvmlDeviceGetHandleByIndex(index)


def nvml_free_total(index: int) -> tuple[int, int] | None:
    """(free, total) bytes of CUDA device `index` read through NVML; None where NVML is not."""
    try:
        from vllm.third_party import pynvml as nvml
    except ImportError:
        try:
            import pynvml as nvml  # type: ignore[no-redef]
        except ImportError:
            return None
    try:
        nvml.nvmlInit()
        try:
            info = nvml.nvmlDeviceGetMemoryInfo(_nvml_device(nvml, index))
            return int(info.free), int(info.total)
        finally:
            nvml.nvmlShutdown()
    except Exception:
        return None


def cuda_free_total(index: int) -> tuple[int, int]:
    """(free, total) bytes of CUDA device `index`: NVML, else torch.cuda.mem_get_info."""
    found = nvml_free_total(index)
    if found is not None:
        return found
    import torch

    free, total = torch.cuda.mem_get_info(index)
    return int(free), int(total)


def cuda_devices(tensor_parallel_size: int = 1) -> list[int]:
    """The CUDA devices a model will use here ([] on a machine without CUDA)."""
    try:
        import torch

        if not torch.cuda.is_available():
            return []
        return list(range(min(max(1, tensor_parallel_size), torch.cuda.device_count())))
    except ImportError:
        return []


def gpu_holders(own: set[int]) -> list[str]:
    """What holds device memory, from nvidia-smi: `pid 123 (python, this process) 30.2 GiB`."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,process_name,used_memory",
             "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=15, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    holders = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        pid, name, mib = int(parts[0]), Path(parts[1]).name, parts[2]
        mine = ", this process" if pid == os.getpid() else ", its engine" if pid in own else ""
        gib = f"{float(mib) / 1024:.1f} GiB" if mib.replace(".", "").isdigit() else mib
        holders.append(f"pid {pid} ({name}{mine}) {gib}")
    return holders


def weights_bytes(source: str) -> int:
    """Bytes of a local model folder's weight files (0 for a hub id: not known before loading)."""
    folder = Path(source)
    if not folder.is_dir():
        return 0
    return sum(f.stat().st_size for f in folder.glob("*.safetensors")) or sum(
        f.stat().st_size for f in folder.glob("*.bin")
    )


def cuda_need(kwargs: dict, total: int, source: str = "") -> int:
    """Bytes a model will take on each device: KV cache bytes plus the weights' files when
    `kv_cache_memory_bytes` is set, else `gpu_memory_utilization` (vLLM's default 0.9) x total."""
    kv = kwargs.get("kv_cache_memory_bytes")
    if kv:
        tp = max(1, int(kwargs.get("tensor_parallel_size") or 1))
        return int(kv) + weights_bytes(source) // tp
    return int(float(kwargs.get("gpu_memory_utilization") or DEFAULT_UTILIZATION) * total)


def check_room(
    model: str,
    kwargs: dict,
    source: str = "",
    devices: list[int] | None = None,
    read: Callable[[int], tuple[int, int]] = cuda_free_total,
    holders: Callable[[set[int]], list[str]] = gpu_holders,
) -> None:
    """Raise ResourceError (one line) if a CUDA device lacks the free memory `model` needs."""
    if devices is None:
        devices = cuda_devices(int(kwargs.get("tensor_parallel_size") or 1))
    for index in devices:
        free, total = read(index)
        need = cuda_need(kwargs, total, source)
        if free >= need:
            continue
        held = holders(child_pids()) or [
            f"this process and others hold {(total - free) / GiB:.1f} GiB (nvidia-smi not found)"
        ]
        raise ResourceError(
            f"model {model} needs {need / GiB:.1f} GiB on cuda:{index} but only "
            f"{free / GiB:.1f} of {total / GiB:.1f} GiB are free; held by: {'; '.join(held)} "
            f"(end those, or lower engine.kwargs.gpu_memory_utilization)"
        )


# ---------------------------------------------------------------- one engine's footprint ----


CLOSES: list[dict] = []  # every close in this process, in order (scripts/gpu_check.py prints them)


@dataclass
class Footprint:
    """The memory level before a model loaded, and the processes its engine started."""

    model: str
    devices: list[int]  # CUDA devices in use ([]: CPU, the level is this process tree's RSS)
    before: int
    children_before: set[int]
    children: set[int] = field(default_factory=set)
    read: Callable[[], int] | None = None  # the level's reader (tests); None: as `level` says
    exit_s: float = CHILD_EXIT_S  # how long its processes have to exit after the shutdown
    at_load: int = 0  # the level once loaded

    @classmethod
    def before_load(cls, model: str, devices: list[int]) -> Footprint:
        fp = cls(model, devices, 0, child_pids())
        fp.before = fp.level()
        return fp

    def level(self) -> int:
        """Bytes in use now: on CUDA the devices' used memory, else this process tree's RSS."""
        if self.read is not None:
            return self.read()
        if self.devices:
            return sum(t - f for f, t in map(cuda_free_total, self.devices))
        return process_tree_rss()

    def loaded(self) -> None:
        """Note the processes the engine started (its engine core, with multiprocessing on)."""
        self.children = child_pids() - self.children_before
        self.at_load = self.level()

    def end(self, shutdown: Callable[[], None], wait_s: float = WAIT_S) -> float:
        """End the engine for real and wait for its memory; returns GiB still above `before`."""
        try:
            shutdown()
        except Exception as e:  # a dead engine core cannot be asked to stop: end it below
            log.warning("%s: engine shutdown failed (%s); ending its processes", self.model, e)
        killed = end_children(self.children, self.exit_s)
        if killed:
            log.warning("%s: engine processes %s did not exit and were killed", self.model, killed)
        teardown_distributed()
        return self.wait_back(wait_s)

    def wait_back(self, wait_s: float = WAIT_S, poll_s: float = 0.25) -> float:
        """Release memory and poll until within RETURN_SLACK_GIB of `before` (or `wait_s`)."""
        deadline = time.monotonic() + wait_s
        release_memory()
        while True:
            above = (self.level() - self.before) / GiB
            if above <= RETURN_SLACK_GIB or time.monotonic() >= deadline:
                break
            time.sleep(poll_s)
            malloc_trim()
        where = f"cuda:{','.join(map(str, self.devices))}" if self.devices else "RSS"
        if above > RETURN_SLACK_GIB:
            log.warning(
                "%s closed but %.2f GiB (%s) are still held above the level before it loaded "
                "after %.0f s; the next model may not fit", self.model, above, where, wait_s,
            )  # fmt: skip
        else:
            log.info("%s closed: %s back to %+.2f GiB of the level before it loaded",
                     self.model, where, above)  # fmt: skip
        CLOSES.append(
            {"model": self.model, "where": where, "before_gib": self.before / GiB,
             "loaded_gib": self.at_load / GiB, "above_gib": above}
        )  # fmt: skip
        return above
