"""Benchmarks by name. Each module defines one `Benchmark` subclass; `get` builds it from config."""

from __future__ import annotations

from harness.benchmarks.base import Benchmark, Item, LoadReport
from harness.benchmarks.cruxeval import CRUXEval
from harness.benchmarks.gsm8k import GSM8K
from harness.benchmarks.math500 import MATH500
from harness.benchmarks.mmlu import MMLU, MMLURedux
from harness.config import BenchmarkConfig

REGISTRY: dict[str, type[Benchmark]] = {
    "cruxeval": CRUXEval,
    "gsm8k": GSM8K,
    "math500": MATH500,
    "mmlu": MMLU,
    "mmlu_redux": MMLURedux,
}


def get(cfg: BenchmarkConfig) -> Benchmark:
    if cfg.name not in REGISTRY:
        raise ValueError(f"benchmark.name={cfg.name!r}; allowed: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[cfg.name](cfg)


__all__ = ["Benchmark", "Item", "LoadReport", "REGISTRY", "get"]
