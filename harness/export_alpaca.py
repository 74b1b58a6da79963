"""AlpacaEval the official way: an alpaca_eval run's answers as AlpacaEval `model_outputs.json`
files, one per configuration, and the official evaluator run on them when it can be.

Usage:
    python -m harness.export_alpaca RUN_DIR                    # write the files
    python -m harness.export_alpaca RUN_DIR --evaluate         # and run `alpaca_eval evaluate`
    python -m harness.export_alpaca RUN_DIR --data-dir ../shared/data --out exports/

Each file is a JSON list of {dataset, instruction, output, generator}, in the reference's order,
exactly the fields and types of the shipped reference outputs
(`<data_dir>/alpaca_eval/results/gpt4_1106_preview/model_outputs.json`), checked against it
before writing: every instruction must be the reference's, with its `dataset`. The files go to
`RUN_DIR/alpaca_eval/<generator>/model_outputs.json` (the layout of AlpacaEval's results
folder); the generator is the configuration's label with characters other than letters, digits,
`.`, `_` and `-` replaced by `_`. A run of fewer than 805 items gives a partial file (fine for a
look; the leaderboard needs all 805). An item without a final answer is exported with an empty
output (a loss for the judge) and counted.

`--evaluate` runs the official `alpaca_eval evaluate` (package `alpaca-eval`) with the local
reference outputs, so the length-controlled win rate comes from AlpacaEval's own GPT-4 Turbo
judge (`weighted_alpaca_eval_gpt4_turbo`; it needs `OPENAI_API_KEY` and network access). When
the package or the key is missing, it says so and what to run later; the files are written
either way.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from harness.analysis.measure import AnalysisError, load_run
from harness.benchmarks.alpaca_eval import REFERENCE_FILE
from harness.records import Record

log = logging.getLogger(__name__)

FIELDS = ("dataset", "instruction", "output", "generator")
ANNOTATOR = "weighted_alpaca_eval_gpt4_turbo"  # AlpacaEval 2.0's judge (length-controlled)


class ExportError(ValueError):
    """The run cannot be exported (and says why)."""


def generator_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "configuration"


def reference_path(run_config: dict, data_dir: str | None) -> Path:
    """The shipped reference outputs: --data-dir, the run's benchmark.data_dir, the default."""
    candidates = [
        data_dir,
        (run_config.get("benchmark") or {}).get("data_dir"),
        os.environ.get("HARNESS_DATA_DIR"),
        "../shared/data",
    ]
    for root in candidates:
        if root and (Path(root).expanduser() / REFERENCE_FILE).exists():
            return Path(root).expanduser() / REFERENCE_FILE
    raise ExportError(
        f"no {REFERENCE_FILE} under {[c for c in candidates if c]}: give --data-dir (the "
        "reference gives each instruction its `dataset` field and checks the format)"
    )


def read_reference(path: Path) -> list[dict]:
    rows = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(rows, list) or not rows or set(rows[0]) != set(FIELDS):
        raise ExportError(f"{path}: not a list of {FIELDS} records")
    return rows


def validate(outputs: list[dict], reference: list[dict]) -> list[str]:
    """What makes `outputs` differ from the reference's format; empty when valid."""
    datasets = {r["instruction"]: r["dataset"] for r in reference}
    problems = []
    if not isinstance(outputs, list) or not outputs:
        return ["not a non-empty JSON list"]
    generators = {o.get("generator") for o in outputs if isinstance(o, dict)}
    if len(generators) != 1:
        problems.append(f"expected one generator, found {sorted(map(str, generators))}")
    seen = set()
    for i, o in enumerate(outputs):
        if not isinstance(o, dict) or set(o) != set(FIELDS):
            problems.append(f"[{i}]: fields {sorted(o) if isinstance(o, dict) else o!r}")
            continue
        if not all(isinstance(o[f], str) for f in FIELDS):
            problems.append(f"[{i}]: every field must be a string")
        elif o["instruction"] not in datasets:
            problems.append(f"[{i}]: instruction not in the reference: {o['instruction'][:60]!r}")
        elif o["dataset"] != datasets[o["instruction"]]:
            problems.append(f"[{i}]: dataset {o['dataset']!r}, reference has another")
        elif o["instruction"] in seen:
            problems.append(f"[{i}]: instruction repeated")
        seen.add(o.get("instruction"))
    return problems


def model_outputs(label: str, records: list[Record], reference: list[dict]) -> tuple[list, int]:
    """One configuration's model_outputs rows in reference order, and how many had no answer."""
    rows, missing = {}, 0
    for r in records:
        index = int(str(r.item_id).rsplit("/", 1)[-1])  # harness.benchmarks.alpaca_eval's ids
        ref = reference[index] if 0 <= index < len(reference) else None
        if ref is None or ref["instruction"] != r.question:
            raise ExportError(f"{label}, {r.item_id}: its question is not the reference's")
        missing += r.final_text is None
        rows[index] = {
            "dataset": ref["dataset"],
            "instruction": ref["instruction"],
            "output": r.final_text or "",
            "generator": generator_name(label),
        }
    return [rows[i] for i in sorted(rows)], missing


def export(run_dir: Path, data_dir: str | None = None, out: Path | None = None) -> dict[str, Path]:
    """Write every configuration's model_outputs.json; returns label -> path."""
    run = load_run(run_dir)
    if run.benchmark != "alpaca_eval":
        raise ExportError(f"{run_dir} is a {run.benchmark} run, not alpaca_eval")
    reference = read_reference(reference_path(run.config, data_dir))
    by_label: dict[str, list[Record]] = {}
    for r in run.records:
        by_label.setdefault(r.configuration, []).append(r)
    written = {}
    for label, records in by_label.items():
        rows, missing = model_outputs(label, records, reference)
        if problems := validate(rows, reference):
            raise ExportError(f"{label}: not AlpacaEval's format: {'; '.join(problems[:5])}")
        if missing:
            log.warning("%s: %d items without a final answer exported as empty", label, missing)
        if len(rows) < len(reference):
            log.info("%s: %d of %d instructions (a partial set)", label, len(rows), len(reference))
        path = (out or run_dir / "alpaca_eval") / generator_name(label) / "model_outputs.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written[label] = path
    return written


def evaluator_command(outputs: Path, reference: Path, annotator: str = ANNOTATOR) -> list[str]:
    return [
        "alpaca_eval", "evaluate",
        "--model_outputs", str(outputs),
        "--reference_outputs", str(reference),
        "--annotators_config", annotator,
        "--output_path", str(outputs.parent),
    ]  # fmt: skip


def evaluator_missing(annotator: str = ANNOTATOR) -> str | None:
    """Why the official evaluator cannot run here, or None when it can."""
    if importlib.util.find_spec("alpaca_eval") is None or shutil.which("alpaca_eval") is None:
        return "the `alpaca-eval` package is not installed (pip install alpaca-eval)"
    if "gpt4" in annotator and not os.environ.get("OPENAI_API_KEY"):
        return f"the {annotator} judge needs OPENAI_API_KEY (and network access)"
    return None


def evaluate(written: dict[str, Path], reference: Path, annotator: str = ANNOTATOR) -> int:
    """Run the official evaluator on each file; say clearly when it cannot run."""
    why = evaluator_missing(annotator)
    if why:
        print(f"official AlpacaEval evaluation not run: {why}. Later, per file:")
        for path in written.values():
            print("  " + " ".join(evaluator_command(path, reference, annotator)))
        return 0
    failed = 0
    for label, path in written.items():
        print(f"alpaca_eval on {label} ...")
        failed += subprocess.run(evaluator_command(path, reference, annotator)).returncode != 0
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    """The command line (also read by `harness`'s tab completion)."""
    parser = argparse.ArgumentParser(
        prog="python -m harness.export_alpaca", description=__doc__.split("\n")[0]
    )
    parser.add_argument("run_dir", type=Path, help="a run directory of benchmark=alpaca_eval")
    parser.add_argument(
        "--data-dir", default=None, help="holds alpaca_eval/results/... (reference)"
    )
    parser.add_argument("--out", type=Path, default=None, help="default RUN_DIR/alpaca_eval")
    parser.add_argument("--evaluate", action="store_true", help="run the official evaluator")
    parser.add_argument("--annotators-config", default=ANNOTATOR, help="AlpacaEval judge config")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        written = export(args.run_dir, args.data_dir, args.out)
    except (ExportError, AnalysisError) as e:
        print(f"export error: {e}", file=sys.stderr)
        return 2
    for label, path in written.items():
        print(f"{label}: {path}")
    if args.evaluate:
        config = load_run(args.run_dir).config
        return evaluate(written, reference_path(config, args.data_dir), args.annotators_config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
