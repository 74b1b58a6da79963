"""Memory after each model swap, engine core in-process and as a child process. Prints a table.

A cycle of models (default SmolLM2 -> Qwen2.5-Coder-0.5B -> gemma-3-270m -> SmolLM2) is loaded
one after another in ONE process with the engine preset (default conf/engine/cpu.yaml); each
model answers one short request, then closes, then the next loads. For each setting a fresh
process runs the cycle and reads the RSS of itself plus its children (an engine core in a child
process counts) before the first load (after `import vllm`), after each load and after each close.
The table shows, per close, the RSS above that first level: a model's memory counts as returned
within harness.engines.lifecycle.RETURN_SLACK_GIB (0.5 GiB).

Settings: `inproc` (VLLM_ENABLE_V1_MULTIPROCESSING=0, the cpu preset's) and `child` (=1).
`--close old` closes as the engine did before issue 20 (delete the LLM, gc, empty the CUDA
cache), to compare.

Usage (hold the shared lock: flock /tmp/vllm.lock ...):
    python scripts/swap_memory.py                          # both settings, the engine's close
    python scripts/swap_memory.py --close old --settings inproc
    python scripts/swap_memory.py --engine gpu --cycle qwen2-7b-instruct,llama-3.1-8b-instruct
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CYCLE = "smollm2-135m-instruct,qwen2.5-coder-0.5b-instruct,gemma-3-270m,smollm2-135m-instruct"
SETTINGS = {"inproc": "0", "child": "1"}
QUESTION = [{"role": "user", "content": "Name a colour of the sky."}]


def old_close(engine) -> None:
    """The engine's close before issue 20: drop the references, collect, empty the cache."""
    import gc

    del engine.llm, engine.tokenizer
    gc.collect()


def one_setting(args) -> dict:
    """The cycle in this process (the child of `main`); returns its figures in GiB."""
    from harness.config import load_model_config
    from harness.engines import Sampling
    from harness.engines.lifecycle import GiB, child_pids, process_tree_rss
    from harness.engines.vllm import VllmEngine
    from harness.plan import checked_run, compose

    run = checked_run(compose(f"engine={args.engine}", *args.set))
    run.engine.env["VLLM_ENABLE_V1_MULTIPROCESSING"] = SETTINGS[args.one]
    os.environ.update(run.engine.env)
    import vllm  # noqa: F401 - the import's own memory is no model's

    base = process_tree_rss()
    rows = []
    for name in args.cycle.split(","):
        start = time.perf_counter()
        engine = VllmEngine(load_model_config(name), run.engine, seed=0)
        loaded = process_tree_rss()
        children = len(child_pids())
        engine.chat([QUESTION], [Sampling(n=2, temperature=0.8, max_tokens=16, seed=1)])
        (old_close if args.close == "old" else VllmEngine.close)(engine)
        rows.append(
            {
                "model": name,
                "loaded_gib": (loaded - base) / GiB,
                "closed_gib": (process_tree_rss() - base) / GiB,
                "children_loaded": children,
                "children_closed": len(child_pids()),
                "seconds": time.perf_counter() - start,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return {"setting": args.one, "close": args.close, "base_gib": base / GiB, "rows": rows}


def table(results: list[dict]) -> str:
    names = [r["model"].split("-")[0] for r in results[0]["rows"]]
    head = f"{'setting':<16}" + "".join(f"{'after ' + n:>18}" for n in names)
    lines = ["RSS above the level before the first load, GiB: loaded / after close", head]
    for res in results:
        cells = "".join(
            f"{r['loaded_gib']:>+8.2f} / {r['closed_gib']:>+6.2f} " for r in res["rows"]
        )
        lines.append(f"{res['setting'] + ' (' + res['close'] + ')':<16}{cells}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cycle", default=CYCLE, help="model names, comma-separated")
    p.add_argument("--settings", default="inproc,child", help="inproc and/or child")
    p.add_argument("--close", choices=("new", "old"), default="new")
    p.add_argument("--engine", default="cpu", help="conf/engine preset")
    p.add_argument("--set", action="append", default=[], help="a Hydra override, repeatable")
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    p.add_argument("--one", choices=tuple(SETTINGS), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one_setting(args)), flush=True)
        return
    results = []
    for setting in args.settings.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "out.txt"
            cmd = [sys.executable, __file__, "--one", setting, "--close", args.close,
                   "--cycle", args.cycle, "--engine", args.engine]  # fmt: skip
            cmd += [x for s in args.set for x in ("--set", s)]
            with log.open("w") as f:
                done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
            text = log.read_text()
            if done.returncode != 0:
                sys.exit(f"setting {setting} failed:\n{text[-4000:]}")
        results.append(json.loads(text.split("RESULT ", 1)[1].splitlines()[0]))
        print(json.dumps(results[-1]["rows"]), file=sys.stderr)
    print(table(results))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
