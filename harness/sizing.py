"""What a model needs in memory, reckoned before anything loads (the dry run: harness.dryrun).

A model's figures (`Arch`) come from its files when they are on disk (a local folder or a
prepared GGUF model: config.json, and the parameter count from the safetensors headers), else
from the `arch` block of conf/model/<name>.yaml (hub models: `params` and the KV-cache figures of
their config.json); the yaml fills what the files lack.

  weights   params x bytes of the dtype loaded (engine.kwargs.dtype; auto: the model's own,
            by_cpu: what the CPU computes natively), split over tensor_parallel_size GPUs
  KV cache  per token: layers x kv_heads x head_dim x 2 (K and V) x bytes (kv_cache_dtype;
            auto: the dtype); MLA models (DeepSeek-V2) keep one latent of kv_lora_rank +
            qk_rope_head_dim per layer instead; split over the GPUs too
  overhead  activations, CUDA graphs and the runtime: OVERHEAD_GIB (CPU: measured, RSS of a 0.5B
            model beyond weights and KV cache; GPU: an allowance)
  device    a GPU engine (engine.device_memory_gib set) sizes against the GPUs torch.cuda sees,
            else device_memory_gib x device_count (the knobs, for a login node); vLLM may use
            gpu_memory_utilization of each (0.9). A CPU engine runs in the host's RAM (its cgroup
            limit or MemTotal) with a KV cache of kv_cache_memory_bytes.

A model fits when weights + overhead + the KV cache of one sequence of max_model_len fit (vLLM
refuses to start otherwise; on CPU kv_cache_memory_bytes must hold that sequence); a planned
batch whose KV cache does not fit as well runs in waves (fewer sequences at once), not an error.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from harness.config import EngineConfig, ModelConfig
from harness.errors import ConfigError

GiB = 2**30
DTYPE_BYTES = {
    "float32": 4, "float": 4, "fp32": 4,
    "bfloat16": 2, "float16": 2, "half": 2, "bf16": 2, "fp16": 2,
    "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1,
}  # fmt: skip
QUANTIZED_BYTES = {"fp8": 1.0, "awq": 0.5, "gptq": 0.5, "bitsandbytes": 0.5, "gguf": 0.5}
OVERHEAD_GIB = {"cpu": 2.0, "cuda": 1.5}
DEFAULT_UTILIZATION = 0.9  # vLLM's gpu_memory_utilization
DEFAULT_MAX_NUM_SEQS = 256  # vLLM's default; 1024 on GPUs of 70 GiB or more
ARCH_KEYS = ("params", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
             "head_dim", "hidden_size", "kv_lora_rank", "qk_rope_head_dim",
             "max_position_embeddings", "torch_dtype")  # fmt: skip


@dataclass(frozen=True)
class Arch:
    """The figures memory is reckoned from; None where unknown."""

    params: int | None
    layers: int | None
    kv_elements: int | None  # K and V elements per token and layer, over all KV heads
    dtype: str | None  # the weights' own dtype (what dtype=auto loads)
    context: int | None  # max_position_embeddings
    source: str  # where the figures came from


def safetensors_params(folder: Path) -> int | None:
    """Parameters in a folder's *.safetensors files, from their headers (no tensor is read)."""
    total, files = 0, sorted(folder.glob("*.safetensors"))
    for path in files:
        with path.open("rb") as f:
            header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
        total += sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
    return total if files else None


def folder_figures(folder: Path) -> dict:
    """config.json's figures (a multimodal model's text_config) and the parameter count."""
    path = folder / "config.json"
    if not path.is_file():
        return {}
    config = json.loads(path.read_text())
    config = {**config, **(config.get("text_config") or {})}
    figures = {k: config[k] for k in ARCH_KEYS if config.get(k) is not None}
    figures.setdefault("torch_dtype", config.get("dtype"))
    params = safetensors_params(folder)
    return figures | ({"params": params} if params else {})


def model_folder(model: ModelConfig) -> Path | None:
    """The model's folder when it is on disk (a local path, or a prepared GGUF model)."""
    if model.gguf is not None:
        from harness.models import is_prepared, model_path

        folder = model_path(model.gguf)
        return folder if is_prepared(folder) else None
    folder = Path(model.path or "").expanduser()
    return folder if model.path and folder.is_dir() else None


def model_arch(model: ModelConfig) -> Arch:
    folder = model_folder(model)
    found = folder_figures(folder) if folder is not None else {}
    figures = {**model.arch, **{k: v for k, v in found.items() if v is not None}}
    source = "config.json" if found else f"conf/model/{model.name}.yaml" if model.arch else "none"
    layers = figures.get("num_hidden_layers")
    if figures.get("kv_lora_rank"):  # MLA: one compressed latent and the rope key per layer
        kv = int(figures["kv_lora_rank"]) + int(figures.get("qk_rope_head_dim") or 0)
    elif figures.get("num_key_value_heads") or figures.get("num_attention_heads"):
        heads = int(figures.get("num_key_value_heads") or figures["num_attention_heads"])
        head_dim = figures.get("head_dim")
        if head_dim is None and figures.get("hidden_size") and figures.get("num_attention_heads"):
            head_dim = int(figures["hidden_size"]) // int(figures["num_attention_heads"])
        kv = 2 * heads * int(head_dim) if head_dim else None
    else:
        kv = None
    params = figures.get("params")
    return Arch(
        int(float(params)) if params is not None else None,
        int(layers) if layers is not None else None,
        kv,
        figures.get("torch_dtype"),
        figures.get("max_position_embeddings"),
        source,
    )


# -- the device ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Device:
    kind: str  # cuda | cpu
    count: int  # GPUs of the node (cpu: 1)
    memory: int  # bytes of one device
    name: str  # what it is: a GPU's name, "host RAM", ...
    knobs: bool = False  # from engine.device_memory_gib / device_count (no GPU visible)

    def gpus(self) -> str:
        if self.knobs:
            return f"a node has {self.count} GPU(s) (engine.device_count; no GPU visible here)"
        return f"this node has {self.count} GPU(s) ({self.name})"

    def describe(self) -> str:
        if self.knobs:
            return f"a {size(self.memory)} GPU (engine.device_memory_gib; no GPU visible here)"
        return f"{self.name}, {size(self.memory)}"


def size(b: float) -> str:
    return f"{b / GiB:.1f} GiB" if b >= GiB else f"{b / 2**20:.0f} MiB"


def host_memory() -> tuple[int, str]:
    """Bytes of RAM this process may use: a SLURM job's --mem, the cgroup limit, or MemTotal."""
    mem_mb = os.environ.get("SLURM_MEM_PER_NODE", "")
    if mem_mb.isdigit() and "SLURM_JOB_ID" in os.environ:
        return int(mem_mb) * 2**20, "this SLURM job's --mem"
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            limit = Path(path).read_text().strip()
        except OSError:
            continue
        if limit.isdigit() and int(limit) < 2**60:
            total = int(limit)
            break
    else:
        total = None
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").is_file() else ""
    line = next((x for x in meminfo.splitlines() if x.startswith("MemTotal:")), None)
    mem_total = int(line.split()[1]) * 1024 if line else None
    if total is not None and (mem_total is None or total < mem_total):
        return total, "the cgroup's memory limit"
    if mem_total is None:
        raise ConfigError("cannot read this machine's memory (/proc/meminfo) for the dry run")
    return mem_total, "host RAM"


def visible_gpus() -> list[tuple[str, int]]:
    """(name, bytes) of each CUDA GPU this process sees; torch is imported only where an NVIDIA
    driver is present, so a CPU machine answers at once."""
    if not Path("/proc/driver/nvidia").exists() and not Path("/dev/nvidia0").exists():
        return []
    try:
        import torch

        if not torch.cuda.is_available():
            return []
        props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - no usable CUDA: the knobs stand in
        return []
    return [(p.name, int(p.total_memory)) for p in props]


def device_of(engine: EngineConfig, gpus: list[tuple[str, int]] | None = None) -> Device:
    """The device `engine`'s models run on (see the module docstring)."""
    if engine.device_memory_gib is None:
        memory, what = host_memory()
        return Device("cpu", 1, memory, what)
    gpus = visible_gpus() if gpus is None else gpus
    if gpus:
        granted = os.environ.get("SLURM_GPUS_ON_NODE", "")
        count = int(granted) if granted.isdigit() and "SLURM_JOB_ID" in os.environ else len(gpus)
        return Device("cuda", count, min(m for _, m in gpus), f"{gpus[0][0]}, torch.cuda")
    memory = int(float(engine.device_memory_gib) * GiB)
    return Device("cuda", engine.device_count, memory, "GPU", knobs=True)


# -- what a model needs ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Need:
    """One model's memory on one device (bytes), for one sequence and for the planned batch."""

    model: str
    dtype: str
    tp: int
    arch: Arch
    device: Device
    weights: int
    overhead: int
    kv_per_token: int | None
    context: int | None  # max_model_len
    batch: int  # sequences the planned largest stage decodes at once
    seq_tokens: int  # tokens of each of them (prompt and generation)
    kv_cache: int | None  # bytes reserved for the KV cache (CPU: kv_cache_memory_bytes)
    usable: int  # bytes of the device the engine may take

    @property
    def one_sequence(self) -> int | None:
        if self.kv_per_token is None or self.context is None:
            return None
        return self.kv_per_token * self.context

    @property
    def batch_kv(self) -> int | None:
        if self.kv_per_token is None:
            return None
        return self.kv_per_token * self.batch * self.seq_tokens

    @property
    def at_once(self) -> int | None:
        """Sequences of `seq_tokens` the KV cache left beside the weights holds at once."""
        room = self.kv_cache
        if room is None:
            room = self.usable - self.weights - self.overhead
        if self.kv_per_token is None or room <= 0:
            return None if self.kv_per_token is None else 0
        return room // (self.kv_per_token * max(1, self.seq_tokens))


def dtype_of(kwargs: dict, arch: Arch) -> str:
    from harness.engines.vllm import resolve_dtype

    dtype = resolve_dtype(kwargs) or "auto"
    return (arch.dtype or "bfloat16") if dtype == "auto" else str(dtype)


def weight_bytes(kwargs: dict, dtype: str) -> float:
    quantization = kwargs.get("quantization")
    if quantization in QUANTIZED_BYTES:
        return QUANTIZED_BYTES[quantization]
    return DTYPE_BYTES.get(dtype.replace("torch.", ""), 2)


def model_need(
    model: ModelConfig, kwargs: dict, device: Device, batch: int, seq_tokens: int
) -> Need:
    """What `model` needs with these engine kwargs for a batch of `batch` sequences of
    `seq_tokens` tokens (capped by max_num_seqs and max_model_len)."""
    arch = model_arch(model)
    dtype = dtype_of(kwargs, arch)
    tp = int(kwargs.get("tensor_parallel_size") or 1)
    weights = int((arch.params or 0) * weight_bytes(kwargs, dtype) / tp)
    kv_dtype = kwargs.get("kv_cache_dtype") or "auto"
    kv_bytes = DTYPE_BYTES.get(dtype if kv_dtype == "auto" else kv_dtype, 2)
    per_token = None
    if arch.layers and arch.kv_elements:
        per_token = math.ceil(arch.layers * arch.kv_elements * kv_bytes / tp)
    context = kwargs.get("max_model_len") or arch.context
    large = device.kind == "cuda" and device.memory >= 70 * GiB
    default_seqs = 1024 if large else DEFAULT_MAX_NUM_SEQS
    batch = min(batch, int(kwargs.get("max_num_seqs") or default_seqs))
    seq_tokens = min(seq_tokens, context) if context else seq_tokens
    utilization = float(kwargs.get("gpu_memory_utilization") or DEFAULT_UTILIZATION)
    usable = device.memory if device.kind == "cpu" else int(device.memory * utilization)
    kv_cache = kwargs.get("kv_cache_memory_bytes")
    return Need(
        model.name, dtype, tp, arch, device, weights, int(OVERHEAD_GIB[device.kind] * GiB),
        per_token, context, batch, seq_tokens, None if kv_cache is None else int(kv_cache), usable,
    )  # fmt: skip


def where(model: ModelConfig, kwargs_key: str, knob: str) -> str:
    """The setting to change for `knob`: the model's own engine_kwargs, else the engine's."""
    return f"{model.name}'s engine_kwargs.{knob}" if knob in model.engine_kwargs else (
        f"{kwargs_key}.{knob}")  # fmt: skip


def fit_problem(need: Need, model: ModelConfig) -> str | None:
    """Why `need` cannot run on its device (one line), or None when it fits."""
    d, gib = need.device, size
    if d.kind == "cuda" and need.tp > d.count:
        return (
            f"{need.model}: {where(model, 'engine.kwargs', 'tensor_parallel_size')}={need.tp} "
            f"but {d.gpus()}; lower it or use a larger node"
        )
    if need.arch.params is None:
        return None  # unknown: reported as such, not refused
    one = need.one_sequence or 0
    if need.kv_cache is not None and need.one_sequence is not None and need.kv_cache < one:
        return (
            f"{need.model}: engine.kwargs.kv_cache_memory_bytes={need.kv_cache} holds fewer than "
            f"one sequence of max_model_len={need.context} ({gib(one)}); raise it or lower "
            f"{where(model, 'engine.kwargs', 'max_model_len')}"
        )
    total = need.weights + need.overhead + (need.kv_cache if need.kv_cache is not None else one)
    if total > need.usable:
        split = f" / tensor_parallel_size {need.tp}" if need.tp > 1 else ""
        kv = "kv_cache_memory_bytes" if need.kv_cache is not None else (
            f"one {need.context}-token sequence")  # fmt: skip
        tp = where(model, "engine.kwargs", "tensor_parallel_size")
        fixes = f"raise {tp}, " if d.kind == "cuda" else ""
        return (
            f"{need.model} cannot fit: {gib(need.weights)} of weights "
            f"({need.arch.params / 1e9:.2f}B x {need.dtype}{split}) + {gib(need.overhead)} "
            f"overhead + KV cache of {kv} = "
            f"{gib(total)} > {gib(need.usable)} usable of {d.describe()}; {fixes}lower "
            f"{where(model, 'engine.kwargs', 'max_model_len')}, or use a smaller dtype or a larger "
            "device"
        )
    return None
