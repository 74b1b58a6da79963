"""Quality versus diversity of a study's proposals, from its run directories; nothing regenerated.

Usage:
    python -m harness.analyze RUN_DIR                 # one run (a study of many configurations)
    python -m harness.analyze runs/multirun/DATE/TIME # a sweep: every run directory below it
    python -m harness.analyze RUN_DIR --embedding-model sentence-transformers/all-mpnet-base-v2 \
        --device cuda --bootstrap 2000 --no-wandb

Per configuration (a label in records.jsonl; the same label in two runs of one benchmark is
kept once when its records are identical, else suffixed with the run's Hydra overrides), with
every value computed per record (an item, or an item's turn), averaged per item, then over items:
  t    the ensemble's final score (the headline metric: accuracy, win rate, rating), in percent
       when a run's scores lie in [0, 1], else on the benchmark's own scale (MT-Bench 1-10);
  q    the mean score of its proposals, on the same scale;
  q_K, knorm_K, centered_K   quality measures, K = 1..4 (harness.analysis.quality): the
       per-item power mean of the proposal scores, the K-Norm of the proposer models'
       qualities weighted by their multiplicities (our reading of the paper's K-Norm), and a
       Centered-1/K-Norm;
  d    the Vendi score of the proposals' sentence embeddings (cosine kernel,
       harness.analysis.diversity);
  d_ngram   the Vendi score over word 1-2-gram counts (model-free cross-check);
  answers   the number of distinct extracted answers among the proposals, a missing answer
            counting as one more (the column is left out when no proposal has an answer).
Then, per benchmark, the regression t = alpha*q + beta*d + gamma (harness.analysis.regression)
over the configurations of the methods in --methods, every k of the runs (--common-k: only the
most common number of proposals, since the Vendi score ranges over 1..k; the report says when
several k are fitted together) and the most common aggregator (two aggregators of the same
proposals share q and d; --all-aggregators keeps all), the same fit with each quality measure
(Table 5: R^2 per measure and K), Self-MoA (one proposer model) against Mixed-MoA, t against k
for Self-MoA and Self-MoA-Seq (every k, with 95% intervals and each model's greedy single answer
as a line), and every configuration's t against generated tokens and calls with the Pareto front.
A study too small for a fit is a warning, and the report says why; the rest is still written.
Over several benchmarks, Table 3's layout (harness.analysis.paper): Average, WeightedAvg,
TaskBest rows, paired differences to the best mixture, and the preset's published numbers and
claims beside. Items without a score are left out and counted; a configuration with no scored
item is dropped from the fit with a warning.

Writes, in the analysed directory: report.md, analysis.json, qd_<benchmark>.png,
self_vs_mixed.png, k_<benchmark>.png, cost_<benchmark>.png; mirrors the tables, native charts
and images to W&B (harness.analysis.mirror; offline by default, in the runs' group).
Embeddings are cached (harness.analysis.diversity), so a second analysis
computes none: it prints "embeddings: found N, computed M".
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from harness.analysis.diversity import DEFAULT_EMBEDDING_MODEL, Embedder
from harness.analysis.measure import AnalysisError
from harness.analysis.mirror import mirror
from harness.analysis.pipeline import analyze
from harness.analysis.quality import QualityError
from harness.config import WANDB_NO_KEY, wandb_key_known
from harness.methods import declaring


def build_parser() -> argparse.ArgumentParser:
    """The command line (also read by `harness`'s tab completion)."""
    parser = argparse.ArgumentParser(
        prog="python -m harness.analyze", description=__doc__.split("\n")[0]
    )
    parser.add_argument("path", type=Path, help="a run directory or a multirun sweep directory")
    parser.add_argument(
        "--embedding-model",
        default=DEFAULT_EMBEDDING_MODEL,
        help="'minilm' (offline, PyPI) or a sentence-transformers id/folder",
    )
    parser.add_argument(
        "--long-texts",
        default="chunk",
        choices=["chunk", "truncate"],
        help="a proposal longer than the embedder's window: embedded whole in windows, averaged "
        "(chunk), or cut by the model (truncate)",
    )
    parser.add_argument(
        "--device", default=None, help="embedding device (cpu, cuda); default: automatic"
    )
    parser.add_argument(
        "--cache-dir", default=None, help="embedding cache (default ~/.cache/harness/embeddings)"
    )
    parser.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap draws over items (0: none)"
    )
    parser.add_argument(
        "--methods",
        default=",".join(declaring("in_regression")),
        help="methods whose configurations enter the regression (default: %(default)s)",
    )
    parser.add_argument(
        "--common-k",
        action="store_true",
        help="fit only the configurations of the most common k (the Vendi score ranges over "
        "1..k, so d of different k is not comparable); plots and tables show every k anyway",
    )
    parser.add_argument("--all-k", action="store_true", help=argparse.SUPPRESS)  # the default now
    parser.add_argument(
        "--all-aggregators",
        action="store_true",
        help="fit over every aggregator, not only the most common (two aggregators of the same "
        "proposals share q and d: each proposal set then counts twice)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--wandb-mode", default="offline", choices=["offline", "online", "disabled"]
    )
    parser.add_argument("--no-wandb", action="store_true", help="same as --wandb-mode disabled")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.bootstrap < 0:
        parser.error(f"--bootstrap must be >= 0 (got {args.bootstrap})")
    if args.wandb_mode == "online" and not args.no_wandb and not wandb_key_known():
        print(f"analysis error: {WANDB_NO_KEY.replace('logger.mode', '--wandb-mode')}",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        embedder = Embedder(args.embedding_model, args.cache_dir, args.device, args.long_texts)
        methods = [m for m in args.methods.split(",") if m]
        results = analyze(
            args.path, embedder, methods, not args.common_k, args.bootstrap, args.seed,
            args.all_aggregators,
        )  # fmt: skip
        if not (args.no_wandb or args.wandb_mode == "disabled"):
            mirror(args.path, results, args.wandb_mode)
    except (AnalysisError, QualityError) as e:
        print(f"analysis error: {e}", file=sys.stderr)
        return 2
    print((args.path / "report.md").read_text())
    print(f"report: {(args.path / 'report.md').resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
