"""How far to trust a local judge: its agreement with GPT-4 Turbo on AlpacaEval 2.0 pairs.

The published annotations (`<data_dir>/alpaca_eval/results/<model>/weighted_alpaca_eval_gpt4_
turbo/annotations.json`, for three models x 805 instructions) hold GPT-4 Turbo's preference
between the reference output (output_1) and the model's (output_2). The configured judge
(`benchmark.judge`) sees the same pairs in both orders, through the same prompt, engine and
store as `benchmark=alpaca_eval` runs, and the command prints its agreement with a 95% CI:

    python -m harness.agreement benchmark=alpaca_eval benchmark.judge=qwen2.5-coder-0.5b-instruct \\
        benchmark.limit=30

`benchmark.limit` is the number of instructions per annotated model (the first N valid ones).
Writes `agreement.json` in the run directory.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from harness import benchmarks
from harness.benchmarks import Item
from harness.config import CONF_DIR, ConfigError, RunConfig
from harness.engines.factory import prepare_weights
from harness.environment import check_environment
from harness.errors import one_line
from harness.generate import Generator, ModelSlot
from harness.metrics import mean, mean_ci
from harness.plan import checked_run
from harness.score import judge_all
from harness.store import Store
from harness.tables import format_table
from harness.tracking import as_table, init_run, run_name

log = logging.getLogger(__name__)

ANNOTATED = ("claude-2.1", "gpt-3.5-turbo-1106", "OpenHermes-2.5-Mistral-7B")
ANNOTATIONS = "alpaca_eval/results/{}/weighted_alpaca_eval_gpt4_turbo/annotations.json"


def read_annotations(data_dir: Path, model: str, limit: int | None) -> tuple[list[dict], list[str]]:
    """The first `limit` valid annotations of `model` (reference vs model), and skipped ones."""
    path = data_dir / ANNOTATIONS.format(model)
    if not path.is_file():
        raise ConfigError(f"no annotations for {model} at {path} (benchmark.data_dir)")
    rows, skipped = [], []
    for i, a in enumerate(json.loads(path.read_text(encoding="utf-8"))):
        fields = ("instruction", "output_1", "output_2")
        pref = a.get("preference") if isinstance(a, dict) else None
        if not isinstance(pref, (int, float)) or not all(
            isinstance(a.get(f), str) and a[f].strip() for f in fields
        ):
            skipped.append(f"{path}[{i}]: missing texts or preference")
            continue
        rows.append({**{f: a[f] for f in fields}, "index": i, "preference": float(pref)})
        if limit is not None and len(rows) >= limit:
            break
    return rows, skipped


def agreement(rows: list[dict], scores: list[float | None]) -> dict:
    """How the judge's verdicts compare with GPT-4 Turbo's on the same pairs.

    Per pair, the published label is 1 when the model's output beat the reference (preference
    above 1.5) and the judge's score is the model's win share over both orders (0, 0.5, 1);
    agreement is 1 - |score - label|, so a position-inconsistent verdict counts half.
    `always_reference` is the agreement of a judge that always prefers the reference: the bar a
    useful judge must clear on these lopsided pairs.
    """
    labels = [float(r["preference"] > 1.5) for r in rows]
    judged = [(s, y) for s, y in zip(scores, labels, strict=True) if s is not None]
    agree = [1.0 - abs(s - y) for s, y in judged]
    lo, hi = mean_ci(agree)
    return {
        "pairs": len(rows),
        "judged": len(judged),
        "unparsed": len(rows) - len(judged),
        "agreement": mean(agree),
        "agreement_ci_low": lo,
        "agreement_ci_high": hi,
        "position_consistent": mean([float(s != 0.5) for s, _ in judged]),
        "judge_win_rate": mean([s for s, _ in judged]),
        "published_win_rate": mean([y for _, y in judged]),
        "always_reference": mean([1.0 - y for _, y in judged]),
    }


def measure(run: RunConfig, gen: Generator) -> dict[str, dict]:
    """Judge every annotated pair as `benchmark=alpaca_eval` judges an answer (both orders, one
    batched stage), with the reference as output_1 and the model's output as the answer."""
    bench = benchmarks.get(run.benchmark)
    data_dir = Path(run.benchmark.data_dir or ".").expanduser()
    per_model, responses = {}, []
    for model in ANNOTATED:
        rows, skipped = read_annotations(data_dir, model, run.benchmark.limit)
        if skipped:
            log.warning("%s: skipped %d annotations (first: %s)", model, len(skipped), skipped[0])
        per_model[model] = (rows, len(responses))
        for r in rows:
            item = Item(
                id=f"{model}/{r['index']}", question=r["instruction"], reference=r["output_1"]
            )
            responses.append((item, bench.messages(item), r["output_2"]))
    judged = judge_all(bench, gen, run.benchmark.judge, responses)
    log.info(
        "judged %d pairs in %.1f s (%d prompts from the store)",
        len(responses),
        gen.stages[0].gen_s,
        gen.stages[0].found,
    )
    results = {
        model: (rows, [score for score, _ in judged[start : start + len(rows)]])
        for model, (rows, start) in per_model.items()
    }
    table = {model: agreement(rows, scores) for model, (rows, scores) in results.items()}
    table["all"] = agreement(
        [r for rows, _ in results.values() for r in rows],
        [s for _, scores in results.values() for s in scores],
    )
    return table


def agreement_table(table: dict[str, dict]) -> str:
    rows = [
        [
            model,
            a["pairs"],
            a["unparsed"],
            f"{a['agreement']:.3f}",
            f"[{a['agreement_ci_low']:.2f}, {a['agreement_ci_high']:.2f}]",
            f"{a['always_reference']:.3f}",
            f"{a['position_consistent']:.3f}",
            f"{a['judge_win_rate']:.3f}",
            f"{a['published_win_rate']:.3f}",
        ]
        for model, a in table.items()
    ]
    headers = [
        "model vs GPT-4 Turbo",
        "pairs",
        "unparsed",
        "agreement",
        "95% CI",
        "always-reference",
        "position-consistent",
        "judge win rate",
        "published",
    ]
    return format_table(headers, rows)


def mirror(run: RunConfig, table: dict[str, dict]) -> None:
    """The agreement table on W&B (job_type agreement), when the logger is on."""
    if run.logger.mode == "disabled":
        return
    import wandb

    wrun = init_run(
        run.logger,
        run_dir=run.run_dir,
        name=run_name(f"agreement-{run.benchmark.judge}"),
        job_type="agreement",
        notes=f"judge {run.benchmark.judge} vs GPT-4 Turbo on AlpacaEval 2.0 annotations",
        tags=["agreement", run.benchmark.judge or ""],
    )
    try:
        rows = [
            {"model": model} | {k: v for k, v in m.items() if isinstance(v, int | float | str)}
            for model, m in table.items()
        ]
        wrun.log({"agreement": as_table(wandb, rows)})
    finally:
        wrun.finish()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        check_environment()
        run = checked_run(cfg, HydraConfig.get().runtime.output_dir)
        if run.benchmark.name != "alpaca_eval":
            raise ConfigError(
                "the agreement check uses AlpacaEval annotations: benchmark=alpaca_eval"
            )
        prepare_weights(run.models, run.engine)
        slot = ModelSlot(run.models, run.engine, run.seed)
        try:
            table = measure(run, Generator(slot, Store(run.store_dir), run.seed))
        finally:
            slot.close()
    except ConfigError as e:
        print(one_line(e), file=sys.stderr)
        sys.exit(2)
    out = Path(run.run_dir) / "agreement.json"
    out.write_text(json.dumps({"judge": run.benchmark.judge, "agreement": table}, indent=2))
    mirror(run, table)
    print(f"\njudge {run.benchmark.judge} vs GPT-4 Turbo (AlpacaEval 2.0 annotations)\n")
    print(agreement_table(table))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
