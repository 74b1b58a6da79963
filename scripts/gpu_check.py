"""The bench (scripts/bench.py) as a device check: one GPU (or the CPU engine), the smallest real
model, one command; prints tokens/s, the ratio to the roofline (HBM bandwidth on a GPU), memory
after a model phase, and the schedule figures. Writes <out>/bench.json and <out>/check.json.

On a lent GPU nothing of the harness's model cache exists and no hub is reachable: pass
`--model-dir` with a model folder that travelled, or `--random-init` with a folder holding only
the config and tokenizer of a real architecture (SmolLM2: about 3 MB), to build random weights
on the device (throughput only; texts are noise).

With `--kits` (a folder of scripts/gpu_kits.py: config and tokenizer of real architectures, no
weights; vLLM's `load_format="dummy"` fills them with random values) the check first runs a small
3-model mixture study through the harness's own study path (harness.run.study): the three kits
propose, the third (gemma's turn format, a template that refuses a system role) aggregates; it
prints the memory after each load and each close (the swaps), the requests whose system text was
folded into the user turn, and the outcomes; then the bench on the first kit.

Usage:
    python scripts/gpu_check.py                                  # GPU if present, else CPU engine
    python scripts/gpu_check.py --kits /tmp/trip/kits            # the lent GPU (gpu_trip.py)
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


def kit_names(kits: Path) -> list[str]:
    """The three kits' model names (conf/model names), in scripts/gpu_kits.py's order."""
    try:
        names = list(json.loads((kits / "kits.json").read_text())["kits"])
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"gpu_check: {kits} is not a kits folder (scripts/gpu_kits.py): {e}")
    if len(names) != 3:
        sys.exit(f"gpu_check: {kits}/kits.json names {len(names)} kits, the study needs 3")
    return names


def study_overrides(kits: Path, device: str, items: int, out: Path) -> tuple[list[str], list[str]]:
    """The mixture study on the kits as Hydra overrides, and the kits' model names."""
    names = kit_names(kits)
    letters = dict(zip("xyz", names, strict=True))
    # both rows: z aggregates; short outputs (the lifecycle is checked here, the bench decodes)
    shared = f"aggregator: {names[2]}, max_tokens: 32, aggregator_max_tokens: 32"
    rows = [f"{{name: mixed_moa, mixture: xxyyzz, {shared}}}",
            f"{{name: self_moa, model: {names[1]}, k: 2, {shared}}}"]  # fmt: skip
    overrides = [
        f"engine={'gpu' if device == 'cuda' else 'cpu'}",
        f"model={names[0]}",
        "method=mixed_moa",
        "benchmark=gsm8k",
        f"benchmark.limit={items}",
        f"benchmark.data_dir={kits}",
        "baseline=false",
        "logger.mode=disabled",
        f"store_dir={out / 'store'}",
        *(f"++letters.{k}={v}" for k, v in letters.items()),
        "configurations=[" + ",".join(rows) + "]",
    ]
    return overrides, names


def run_study(args) -> None:
    """(child process) The mixture study on the kits; writes <out>/study.json."""
    from harness.config import ModelConfig
    from harness.engines import lifecycle
    from harness.plan import checked_run, compose
    from harness.run import study

    kits, out = Path(args.kits).resolve(), Path(args.out).resolve()
    overrides, names = study_overrides(kits, args.device, args.items, out)
    run = checked_run(compose(*overrides, *args.set), str(out / "study"))
    for name in names:  # the kit's folder, random weights: nothing to download or prepare
        model = run.models[name]
        run.models[name] = ModelConfig(
            name=name,
            path=str(kits / name),
            engine_kwargs={**model.engine_kwargs, "load_format": "dummy"},
            arch=model.arch,
        )
    run.model = run.models[names[0]]
    start = time.perf_counter()
    metrics = study(run)
    result = {
        "study_s": time.perf_counter() - start,
        "items": metrics.items,
        "outcomes": {label: dict(c.outcomes) for label, c in metrics.configurations.items()},
        "system_folded": metrics.system_folded,
        "swaps": lifecycle.CLOSES,
    }
    (out / "study.json").write_text(json.dumps(result, indent=2) + "\n")


def swap_table(swaps: list[dict]) -> str:
    """Memory after each load and close, above the level before the first load."""
    if not swaps:
        return "no model closed"
    base = swaps[0]["before_gib"]
    lines = [f"memory ({swaps[0]['where']}), GiB above the level before the first load",
             f"{'model':<30}{'loaded':>9}{'closed':>9}{'vs its own load':>18}"]  # fmt: skip
    for s in swaps:
        closed = s["before_gib"] + s["above_gib"] - base
        lines.append(f"{s['model']:<30}{s['loaded_gib'] - base:>+9.2f}{closed:>+9.2f}"
                     f"{s['above_gib']:>+18.2f}")  # fmt: skip
    return "\n".join(lines)


def mixture_check(args, device: str, out: Path) -> dict:
    """Run the study in a child process (a crash there still lets the bench run); its figures."""
    cmd = [sys.executable, __file__, "--study", "--kits", args.kits, "--device", device,
           "--items", str(args.items), "--out", str(out)]  # fmt: skip
    cmd += [x for s in args.set for x in ("--set", s)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT)
    if proc.returncode != 0 or not (out / "study.json").exists():
        print(f"gpu_check: the mixture study failed (exit {proc.returncode}); the bench follows")
        return {"study_failed": proc.returncode, "study_s": time.perf_counter() - start}
    result = json.loads((out / "study.json").read_text())
    print("\n" + swap_table(result["swaps"]))
    print(f"outcomes {result['outcomes']}, system text folded into the user turn: "
          f"{result['system_folded']} requests")  # fmt: skip
    return result


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
    ap.add_argument("--kits", help="a kits folder: the 3-model mixture study first, then the bench")
    ap.add_argument("--items", type=int, default=8, help="GSM8K items of the mixture study")
    ap.add_argument("--study", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    device = device_of(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.study:
        args.device = device
        return run_study(args)
    check: dict = {"device": device, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if device == "cuda":
        import torch

        check["gpu"] = torch.cuda.get_device_name(0)
    try:
        import vllm

        check["vllm"] = vllm.__version__
    except ImportError as e:
        sys.exit(f"gpu_check: vLLM is not importable here ({e}); see ../shared/docs/gpu.md")

    model_dir, model, data_dir, sets = args.model_dir, args.model, args.data_dir, list(args.set)
    if args.kits:
        check |= mixture_check(args, device, out)
        model = kit_names(Path(args.kits))[0]
        model_dir, data_dir = str(Path(args.kits) / model), args.kits
        sets.append("++engine.kwargs.load_format=dummy")
    elif args.random_init:
        if not model_dir:
            sys.exit("gpu_check: --random-init needs --model-dir (a config and tokenizer)")
        dtype = "bfloat16" if device == "cuda" else "float32"
        model_dir = str(random_model(Path(model_dir), out / "random_model", dtype))
        check["random_init"] = True
    cmd = [
        sys.executable,
        str(ROOT / "scripts/bench.py"),
        "--engine", "gpu" if device == "cuda" else "cpu",
        "--model", model,
        "--sizes", args.sizes,
        "--k", str(args.k),
        "--max-tokens", str(args.max_tokens),
        "--data-dir", data_dir,
        "--out", str(out / "bench.json"),
    ]  # fmt: skip
    if model_dir:
        cmd += ["--model-path", model_dir]
    for s in sets:
        cmd += ["--set", s]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT)
    check["bench_s"] = time.perf_counter() - start
    if proc.returncode != 0:  # what the study measured is kept
        (out / "check.json").write_text(json.dumps(check | {"bench_failed": proc.returncode}))
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
    if "study_failed" in check:
        sys.exit("gpu_check: the mixture study failed (its output is above); the bench passed")


if __name__ == "__main__":
    main()
