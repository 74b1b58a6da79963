"""Agreement of the scoring path (extract_answer, then score) with the graded corpus.

The corpus is tests/data/extraction/<benchmark>.jsonl: responses (mostly real outputs of our CPU
models, plus written ones for forms the models rarely produce) with the verdict a careful human
grader gives and an `ambiguous` flag. Prints, per benchmark, how many verdicts the code agrees
with, on the unambiguous cases and on all. With --rev, the benchmark modules are taken from that
git revision instead of the working tree (e.g. the code before the extraction work).

Usage (from the repository root):
    python -m scripts.extraction_agreement
    python -m scripts.extraction_agreement --rev d85de5b --show
"""

from __future__ import annotations

import argparse
import json
import subprocess
import types
from pathlib import Path

from harness.benchmarks.base import Item

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "extraction"
MODULES = {"gsm8k": "gsm8k", "mmlu": "mmlu", "math500": "math500"}


def scorer(benchmark: str, rev: str | None):
    """(extract_answer, is_correct) of a benchmark module, from the tree or a git revision."""
    name = MODULES[benchmark]
    if rev is None:
        module = __import__(f"harness.benchmarks.{name}", fromlist=["extract_answer"])
    else:
        path = f"harness/benchmarks/{name}.py"
        source = subprocess.run(
            ["git", "show", f"{rev}:{path}"], capture_output=True, text=True, check=True
        ).stdout
        module = types.ModuleType(f"{name}_at_{rev}")
        exec(compile(source, f"{rev}:{path}", "exec"), module.__dict__)
    if benchmark == "mmlu":
        return module.extract_answer, lambda gold, answer: answer is not None and answer == gold
    return module.extract_answer, module.is_equivalent


def agreement(benchmark: str, rev: str | None = None, show: bool = False) -> dict:
    extract, is_correct = scorer(benchmark, rev)
    counts = {"cases": 0, "agree": 0, "unambiguous": 0, "agree_unambiguous": 0}
    for line in (CORPUS / f"{benchmark}.jsonl").read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        answer = extract(case["response"])
        item = Item(id=case["id"], question="", reference=case["gold"])
        agree = bool(is_correct(item.reference, answer)) == case["correct"]
        counts["cases"] += 1
        counts["agree"] += agree
        if not case["ambiguous"]:
            counts["unambiguous"] += 1
            counts["agree_unambiguous"] += agree
        if show and not agree:
            print(
                f"  {benchmark} {case['id']} ({case['class']}): read {answer!r}, gold "
                f"{case['gold']!r}, grader says {'correct' if case['correct'] else 'wrong'}"
            )
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", help="take the benchmark modules from this git revision")
    parser.add_argument("--show", action="store_true", help="list the disagreements")
    args = parser.parse_args()
    print("| benchmark | code | unambiguous agree | all agree |")
    print("|---|---|---|---|")
    for benchmark in MODULES:
        c = agreement(benchmark, args.rev, args.show)
        print(
            f"| {benchmark} | {args.rev or 'working tree'} | "
            f"{c['agree_unambiguous']}/{c['unambiguous']} "
            f"({c['agree_unambiguous'] / c['unambiguous']:.1%}) | "
            f"{c['agree']}/{c['cases']} ({c['agree'] / c['cases']:.1%}) |"
        )


if __name__ == "__main__":
    main()
