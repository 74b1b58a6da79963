"""Benchmarks by name: one module per benchmark, one entry each in REGISTRY below.

Each benchmark is a `Benchmark` subclass (harness.benchmarks.base) with its typed knobs
(`Knobs`: the knobs every benchmark has, plus its own in a subclass). The valid `benchmark=`
names, each benchmark's knobs and defaults, and their validation all come from here:
`conf/benchmark/<name>.yaml` builds on the benchmark's knobs schema (registered with Hydra as
`benchmark_schema/<name>`).

Adding a benchmark: write `harness/benchmarks/<name>.py` (a Benchmark subclass, with a `Knobs`
subclass when it has knobs of its own), add it to REGISTRY, and add `conf/benchmark/<name>.yaml`.
"""

from __future__ import annotations

from dataclasses import fields

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness.benchmarks.alpaca_eval import AlpacaEval
from harness.benchmarks.base import Benchmark, Item, JudgedBenchmark, Knobs, LoadReport
from harness.benchmarks.cruxeval import CRUXEval
from harness.benchmarks.gsm8k import GSM8K
from harness.benchmarks.math500 import MATH500
from harness.benchmarks.mmlu import MMLU
from harness.benchmarks.mmlu_redux import MMLURedux
from harness.benchmarks.mt_bench import MTBench
from harness.config import options
from harness.errors import ConfigError

REGISTRY: dict[str, type[Benchmark]] = {
    cls.name: cls for cls in (AlpacaEval, CRUXEval, GSM8K, MATH500, MMLU, MMLURedux, MTBench)
}


def benchmark_class(name: str, key: str = "benchmark") -> type[Benchmark]:
    if name not in REGISTRY:
        raise ConfigError(f"{key}.name={name!r}; allowed: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def knobs_from(values, key: str = "benchmark") -> Knobs:
    """A benchmark's validated typed knobs from a mapping or a knobs object; names bad keys."""
    if isinstance(values, Knobs):
        if type(values) is benchmark_class(values.name, key).Knobs:
            benchmark_class(values.name, key).validate(values, key)
            return values
        values = {f.name: getattr(values, f.name) for f in fields(values)}  # another's knobs
    values = OmegaConf.to_container(values) if OmegaConf.is_config(values) else dict(values)
    name = values.get("name")
    if not isinstance(name, str):
        raise ConfigError(f"{key}.name is required: one of {', '.join(sorted(REGISTRY))}")
    cls = benchmark_class(name, key)
    allowed = [f.name for f in fields(cls.Knobs)]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{key}.{unknown[0]} is not a config key; benchmark keys of {name}: "
            f"{', '.join(allowed)}"
        )
    try:
        typed = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls.Knobs), values))
    except OmegaConfBaseException as e:
        raise ConfigError(f"{key}.{e.full_key}: {str(e).splitlines()[0]}") from e
    cls.validate(typed, key)
    return typed


def knobs(name: str, **values) -> Knobs:
    """Knobs of benchmark `name` with `values` over its defaults (for code and tests)."""
    return knobs_from({"name": name, **values})


def validate_judge(cfg: Knobs, need_answers: list[str]) -> None:
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


def get(cfg: Knobs) -> Benchmark:
    """The benchmark of `cfg` (typed knobs: `knobs_from`, `knobs`)."""
    return benchmark_class(cfg.name)(cfg)


# conf/benchmark/<name>.yaml starts from its schema: `defaults: [/benchmark_schema/<name>@_here_]`
for _cls in REGISTRY.values():
    ConfigStore.instance().store(
        group="benchmark_schema", name=_cls.name, node=_cls.Knobs(name=_cls.name)
    )

__all__ = [
    "Benchmark",
    "Item",
    "JudgedBenchmark",
    "Knobs",
    "LoadReport",
    "REGISTRY",
    "benchmark_class",
    "get",
    "knobs",
    "knobs_from",
    "validate_judge",
]
