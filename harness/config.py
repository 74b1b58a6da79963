"""Typed run configuration: the dataclasses behind the Hydra YAML in conf/, and their validation.

The Hydra config is converted once, at the entry point, with `to_run_config`; nothing below
`harness.run` sees a DictConfig. Every impossible value stops the run here, before any model
loads, with a message that names the key and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
METHODS = ("single", "majority_vote", "self_moa", "mixed_moa", "self_moa_seq", "usc")
CONTEXT_POLICIES = ("shorten", "drop_longest", "fail", "seq")
LOGGER_MODES = ("offline", "online", "disabled")
PHASES = ("all", "propose")


@dataclass
class ModelConfig:
    name: str = MISSING
    path: str | None = None  # hub id (GPU users) or local folder
    gguf: str | None = None  # key of harness.models.GGUF_MODELS: prepared offline on first use
    revision: str | None = None  # hub revision; part of the model's identity
    chat_template: str | None = None  # overrides the tokenizer's own template when set
    trust_remote_code: bool = False
    engine_kwargs: dict[str, Any] = field(default_factory=dict)  # merged over engine.kwargs
    # a conf/engine preset for this model alone (e.g. openai: served proposers, in-process
    # aggregator); null = the run's `engine`
    engine: str | None = None


@dataclass
class MethodConfig:
    name: str = MISSING
    label: str | None = None  # name in tables and W&B; derived from the knobs when null
    model: str | None = None  # proposer model name; null = the run's `model`
    mixture: str | None = None  # mixed_moa: letter multiset over `letters`, e.g. "qqqsss"
    layers: int = 2  # self_moa/mixed_moa: proposal layers + final aggregation (3 = 6 + 6 + 1 calls)
    window: int = 6  # self_moa_seq: responses per aggregation round
    reserved: int = 3  # self_moa_seq: slots holding the repeated current synthesis
    shuffle: bool = True  # seeded permutation of proposals in aggregation prompts, per item
    context_policy: str = "shorten"  # aggregation prompt over the context: see CONTEXT_POLICIES
    k: int = 1  # proposals per item
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    aggregator: str | None = None  # model config name (conf/model/); null = the proposer model
    aggregator_temperature: float = 0.0
    aggregator_max_tokens: int = 512


@dataclass
class BenchmarkConfig:
    name: str = MISSING
    data_dir: str | None = None  # local copy; when absent the public hub is used via `datasets`
    split: str = "test"
    limit: int | None = None  # first N items; null = all
    hub_id: str | None = None
    hub_config: str | None = None
    # Judged benchmarks (alpaca_eval, mt_bench): the judge model (a conf/model/ name) and the
    # most tokens it may write per judgement (greedy).
    judge: str | None = None
    judge_max_tokens: int = 32


@dataclass
class EngineConfig:
    name: str = MISSING
    kind: str = "vllm"  # which engine module loads models (harness.engines.KINDS)
    env: dict[str, str] = field(default_factory=dict)  # set before vLLM is imported
    kwargs: dict[str, Any] = field(default_factory=dict)  # passed straight to vllm.LLM


@dataclass
class LoggerConfig:
    mode: str = "offline"
    project: str = "self-moa-harness"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    seed: int = 0
    baseline: bool = True  # also run `single` (greedy, proposer model) as the reference line
    run_dir: str = "."
    store_dir: str = "runs/store"  # content-addressed generations, shared by runs and sweeps
    # A study: many configurations in one run (sharing proposals); empty = just `method`.
    configurations: list[MethodConfig] = field(default_factory=list)
    letters: dict[str, str] = field(default_factory=dict)  # mixture letter -> model name
    # all: the whole study; propose: only the proposal stages (of `phase_model`, null = every
    # proposer), phase 1 of the two-phase SLURM pattern (slurm/README.md)
    phase: str = "all"
    phase_model: str | None = None
    # Filled by `to_run_config`: every model the run needs, by name (proposer and aggregator).
    models: dict[str, ModelConfig] = field(default_factory=dict)


def options(group: str) -> list[str]:
    """Names of the YAML options of a config group (conf/<group>/*.yaml)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def load_model_config(name: str) -> ModelConfig:
    path = CONF_DIR / "model" / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(options('model'))}")
    merged = OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(path))
    return OmegaConf.to_object(merged)


def compose(*overrides: str) -> DictConfig:
    """The root config composed with command-line style overrides, outside `@hydra.main`."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))


def to_run_config(cfg: DictConfig, run_dir: str | None = None) -> RunConfig:
    """Merge the composed Hydra config onto the dataclass schema, convert it, and validate it."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(RunConfig), cfg)
        run: RunConfig = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        raise ConfigError(f"bad config value at {key}: {e.msg if hasattr(e, 'msg') else e}") from e
    if run_dir is not None:
        run.run_dir = run_dir
    validate(run)
    run.models = {run.model.name: run.model}
    for m in run.configurations or [run.method]:
        names = [m.model, m.aggregator, run.benchmark.judge]
        names += [run.letters[c] for c in m.mixture or ""]
        for name in names:
            if name is not None and name not in run.models:
                run.models[name] = load_model_config(name)
                validate_model(run.models[name], f"conf/model/{name}.yaml")
    if run.phase_model is not None and run.phase_model not in run.models:
        raise ConfigError(
            f"phase_model={run.phase_model!r} is not a model of this study; "
            f"its models: {', '.join(sorted(run.models))}"
        )
    return run


def validate(run: RunConfig) -> None:
    b = run.benchmark
    if run.configurations:
        for i, m in enumerate(run.configurations):
            validate_method(m, run, f"configurations[{i}]")
    else:
        validate_method(run.method, run, "method")
    if b.limit is not None and b.limit < 0:
        raise ConfigError(f"benchmark.limit must be >= 0 or null for all items (got {b.limit})")
    if run.logger.mode not in LOGGER_MODES:
        raise ConfigError(f"logger.mode={run.logger.mode!r}; allowed: {', '.join(LOGGER_MODES)}")
    validate_model(run.model, "model")
    if run.phase not in PHASES:
        raise ConfigError(f"phase={run.phase!r}; allowed: {', '.join(PHASES)}")
    if run.phase_model is not None and run.phase != "propose":
        raise ConfigError("phase_model is only used with phase=propose")
    validate_judge(run)


def validate_judge(run: RunConfig) -> None:
    from harness.benchmarks import benchmark_class

    b = run.benchmark
    if not benchmark_class(b.name).judged:
        if b.judge is not None:
            raise ConfigError(f"benchmark.judge is only used by judged benchmarks, not {b.name}")
        return
    if b.judge is None:
        raise ConfigError(
            f"benchmark={b.name} is scored by a judge model: set benchmark.judge to a model "
            f"(one of: {', '.join(options('model'))})"
        )
    load_model_config(b.judge)
    if b.judge_max_tokens < 1:
        raise ConfigError(f"benchmark.judge_max_tokens must be >= 1 (got {b.judge_max_tokens})")
    for m in run.configurations or [run.method]:
        if m.name == "majority_vote":
            raise ConfigError(
                f"method majority_vote needs extractable answers; {b.name} has none (judged)"
            )


def validate_method(m: MethodConfig, run: RunConfig, key: str) -> None:
    if m.name not in METHODS:
        raise ConfigError(f"{key}.name={m.name!r} is not a method; allowed: {', '.join(METHODS)}")
    if m.k < 1:
        raise ConfigError(f"{key}.k must be an integer >= 1 (got {m.k})")
    if m.name == "single" and m.k != 1:
        raise ConfigError(f"{key}.k must be 1 for method=single (got {m.k}); use self_moa")
    if m.name in ("single", "majority_vote") and m.aggregator is not None:
        raise ConfigError(f"{key}.aggregator is not used by {m.name}; set it to null")
    for name, value, hi in [
        ("temperature", m.temperature, 5.0),
        ("aggregator_temperature", m.aggregator_temperature, 5.0),
        ("top_p", m.top_p, 1.0),
    ]:
        if not 0.0 <= value <= hi:
            raise ConfigError(f"{key}.{name} must be in [0, {hi}] (got {value})")
    if m.top_p == 0.0:
        raise ConfigError(f"{key}.top_p must be in (0, 1] (got 0.0)")
    for name, value in [
        ("max_tokens", m.max_tokens),
        ("aggregator_max_tokens", m.aggregator_max_tokens),
    ]:
        if value < 1:
            raise ConfigError(f"{key}.{name} must be >= 1 (got {value})")
    if m.name not in ("single", "mixed_moa") and m.k > 1 and m.temperature == 0.0:
        raise ConfigError(
            f"{key}.temperature=0 with {key}.k={m.k}: greedy samples are identical; "
            "use a temperature > 0 (the paper uses 0.7)"
        )
    for name in (m.model, m.aggregator):
        if name is not None:
            load_model_config(name)  # raises with the list of models
    if m.name == "mixed_moa":
        if not m.mixture:
            raise ConfigError(f"{key}.mixture is required for mixed_moa (e.g. 'qqqsss')")
        unknown = sorted(set(m.mixture) - set(run.letters))
        if unknown:
            raise ConfigError(
                f"{key}.mixture={m.mixture!r}: letters {unknown} are not in "
                f"letters; known: {dict(run.letters)}"
            )
        if m.temperature == 0.0 and any(m.mixture.count(c) > 1 for c in set(m.mixture)):
            raise ConfigError(f"{key}.temperature=0 repeats a model's samples; use > 0")
    elif m.mixture is not None:
        raise ConfigError(f"{key}.mixture is only used by mixed_moa")
    if m.layers < 2:
        raise ConfigError(f"{key}.layers must be >= 2 (proposals + aggregation; got {m.layers})")
    if not 0 <= m.reserved < m.window:
        raise ConfigError(
            f"{key}: need 0 <= reserved < window (got reserved={m.reserved}, window={m.window})"
        )
    if m.context_policy not in CONTEXT_POLICIES:
        raise ConfigError(
            f"{key}.context_policy={m.context_policy!r}; allowed: {', '.join(CONTEXT_POLICIES)}"
        )


def validate_model(model: ModelConfig, key: str) -> None:
    if (model.path is None) == (model.gguf is None):
        raise ConfigError(f"{key}: set exactly one of {key}.path (hub id or folder) or {key}.gguf")
    if model.gguf is not None:
        from harness.models import GGUF_MODELS

        if model.gguf not in GGUF_MODELS:
            raise ConfigError(
                f"{key}.gguf={model.gguf!r} is not a known GGUF model; "
                f"allowed: {', '.join(sorted(GGUF_MODELS))}"
            )
    elif looks_local(model.path) and not Path(model.path).expanduser().is_dir():
        raise ConfigError(f"{key}.path={model.path!r}: no such model folder")


def looks_local(path: str) -> bool:
    return path.startswith(("/", "./", "../", "~"))


# The root config (conf/config.yaml) lists this schema first in its defaults, so every group is
# typed while it is composed: a misspelt key fails at once, and every field can be overridden.
ConfigStore.instance().store(name="run_schema", node=RunConfig)
