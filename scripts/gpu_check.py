"""The bench (scripts/bench.py) as a device check: one GPU (or the CPU engine), the smallest real
model, one command; prints tokens/s, the ratio to the roofline (HBM bandwidth on a GPU), memory
after a model phase, and the schedule figures. Writes <out>/bench.json and <out>/check.json.

On a lent GPU nothing of the harness's model cache exists and no hub is reachable: pass
`--model-dir` with a model folder that travelled, or `--random-init` with a folder holding only
the config and tokenizer of a real architecture (SmolLM2: about 3 MB), to build random weights
on the device (throughput only; texts are noise).

Usage:
    python scripts/gpu_check.py                                  # GPU if present, else CPU engine
    python scripts/gpu_check.py --device cpu --sizes 4 --k 2 --max-tokens 16   # CI (slow test)
    python scripts/gpu_check.py --device cuda --model-dir shared/smollm2 --random-init
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "generation_config.json",
)


def device_of(wanted: str) -> str:
    if wanted != "auto":
        return wanted
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def random_model(src: Path, out: Path, dtype: str) -> Path:
    """A model of `src`'s architecture (config.json) with random weights, and its tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(src)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, torch_dtype=getattr(torch, dtype))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    for name in TOKENIZER_FILES:
        if (src / name).exists():
            shutil.copy(src / name, out / name)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    ap.add_argument("--model", default="smollm2-135m-instruct", help="a conf/model name")
    ap.add_argument("--model-dir", help="load this folder (else the model's prepared folder)")
    ap.add_argument(
        "--random-init",
        action="store_true",
        help="random weights, --model-dir's architecture and tokenizer",
    )
    ap.add_argument("--sizes", default="8,64")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--set", action="append", default=[], help="config override for the bench")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared/data"))
    ap.add_argument("--out", default="runs/gpu_check")
    args = ap.parse_args()
    device = device_of(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    check: dict = {"device": device, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if device == "cuda":
        import torch

        check["gpu"] = torch.cuda.get_device_name(0)
    try:
        import vllm

        check["vllm"] = vllm.__version__
    except ImportError as e:
        sys.exit(f"gpu_check: vLLM is not importable here ({e}); see ../shared/docs/gpu.md")

    model_dir = args.model_dir
    if args.random_init:
        if not model_dir:
            sys.exit("gpu_check: --random-init needs --model-dir (a config and tokenizer)")
        dtype = "bfloat16" if device == "cuda" else "float32"
        model_dir = str(random_model(Path(model_dir), out / "random_model", dtype))
        check["random_init"] = True
    cmd = [
        sys.executable,
        str(ROOT / "scripts/bench.py"),
        "--engine", "gpu" if device == "cuda" else "cpu",
        "--model", args.model,
        "--sizes", args.sizes,
        "--k", str(args.k),
        "--max-tokens", str(args.max_tokens),
        "--data-dir", args.data_dir,
        "--out", str(out / "bench.json"),
    ]  # fmt: skip
    if model_dir:
        cmd += ["--model-path", model_dir]
    for s in args.set:
        cmd += ["--set", s]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT)
    check["bench_s"] = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"gpu_check: the bench failed (exit {proc.returncode})")
    f = json.loads((out / "bench.json").read_text())
    e, d = f["e"], f["d"]
    check |= {
        "model": f["model"],
        "dtype": f["dtype"],
        "raw_tokens_per_s": d["raw_tokens_per_s"],
        "stage_tokens_per_s": d["stage_tokens_per_s"],
        "stage_vs_raw": d["ratio"],
        "bandwidth_gbs": e["bandwidth_gbs"],
        "roofline_tokens_per_s": e["bound_tokens_per_s"],
        "raw_vs_roofline": e["raw_ratio"],
        "stage_vs_roofline": e["stage_ratio"],
        "harness_vs_bare": f["a"]["ratio"],
        "batched_speedup": {r["items"]: r.get("harness_speedup") for r in f["b"]},
        "memory_released_gib": f.get("gpu_released_gib")
        if device == "cuda"
        else f["rss_released_gib"],
        "memory_loaded_gib": f.get("gpu_loaded_gib") if device == "cuda" else f["rss_loaded_gib"],
    }
    (out / "check.json").write_text(json.dumps(check, indent=2) + "\n")
    print(f"\ngpu_check on {device}: " + json.dumps(check, indent=2))


if __name__ == "__main__":
    main()
