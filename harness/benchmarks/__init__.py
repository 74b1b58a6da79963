"""Benchmarks by name. Each module defines one `Benchmark` subclass; `get` builds it from config."""

from __future__ import annotations

from harness.benchmarks.alpaca_eval import AlpacaEval
from harness.benchmarks.base import Benchmark, Item, JudgedBenchmark, LoadReport
from harness.benchmarks.cruxeval import CRUXEval
from harness.benchmarks.gsm8k import GSM8K
from harness.benchmarks.math500 import MATH500
from harness.benchmarks.mmlu import MMLU, MMLURedux
from harness.benchmarks.mt_bench import MTBench
from harness.config import BenchmarkConfig, ConfigError, options

REGISTRY: dict[str, type[Benchmark]] = {
    "alpaca_eval": AlpacaEval,
    "cruxeval": CRUXEval,
    "gsm8k": GSM8K,
    "math500": MATH500,
    "mmlu": MMLU,
    "mmlu_redux": MMLURedux,
    "mt_bench": MTBench,
}


def benchmark_class(name: str) -> type[Benchmark]:
    if name not in REGISTRY:
        raise ConfigError(f"benchmark.name={name!r}; allowed: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def validate_judge(cfg: BenchmarkConfig, need_answers: list[str]) -> None:
    """A judged benchmark needs `benchmark.judge` and no method of `need_answers` (the names of
    the study's methods that decide by extracted answers: `Method.needs_answer`)."""
    if not benchmark_class(cfg.name).judged:
        if cfg.judge is not None:
            raise ConfigError(f"benchmark.judge is only used by judged benchmarks, not {cfg.name}")
        return
    if cfg.judge is None:
        raise ConfigError(
            f"benchmark={cfg.name} is scored by a judge model: set benchmark.judge to a model "
            f"(one of: {', '.join(options('model'))})"
        )
    if need_answers:
        raise ConfigError(
            f"method {need_answers[0]} needs extractable answers; {cfg.name} has none (judged)"
        )


def get(cfg: BenchmarkConfig) -> Benchmark:
    return benchmark_class(cfg.name)(cfg)


__all__ = [
    "Benchmark",
    "Item",
    "JudgedBenchmark",
    "LoadReport",
    "REGISTRY",
    "benchmark_class",
    "get",
    "validate_judge",
]
