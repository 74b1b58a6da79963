"""Typed run configuration: the dataclasses behind the Hydra YAML in conf/, and their validation.

The Hydra config is converted once, at the entry point, with `to_run_config`; nothing below
`harness.run` sees a DictConfig. Every impossible value stops the run here, before any model
loads, with a message that names the key and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import harness.paths  # noqa: F401 - registers the resolvers of conf/paths/
import harness.rundir  # noqa: F401 - registers ${run_tag:}, used in hydra.run.dir
from harness import methods
from harness.engines.base import KINDS
from harness.errors import ConfigError
from harness.methods.base import check_tokens

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
LOGGER_MODES = ("offline", "online", "disabled")
MAX_LIMIT = 10**6  # items per benchmark
PHASES = ("all", "propose")
MAX_SEED = 2**32 - 1  # numpy's limit; vLLM seeds numpy, torch and random with it


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
    # Code-executing benchmarks (cruxeval): "contained" (namespaces, see harness.sandbox) or
    # "trusted" (no namespaces; only for code you trust). Checked by harness.sandbox.check.
    sandbox: str = "contained"


@dataclass
class EngineConfig:
    name: str = MISSING
    kind: str = "vllm"  # which engine module loads models (harness.engines.KINDS)
    # rough batched decode rate, only for the planned-time line printed before a study
    tokens_per_s_hint: float = 0.0
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
class PathsConfig:
    """Absolute locations (conf/paths/default.yaml): data, runs, store, cache."""

    root: str = "."
    data: str | None = None
    runs: str = "runs"
    store: str = "runs/store"
    cache: str = "~/.cache/harness"

    def __post_init__(self) -> None:  # a relative override is taken from the project root
        for name in ("root", "data", "runs", "store", "cache"):
            setattr(self, name, harness.paths.absolute(getattr(self, name)))


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    # a method's typed knobs (harness.methods: one Knobs dataclass per method)
    method: Any = MISSING
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 0
    baseline: bool = True  # also run `single` (greedy, proposer model) as the reference line
    run_dir: str = "."
    store_dir: str = "runs/store"  # content-addressed generations, shared by runs and sweeps
    # A study: many configurations in one run (sharing proposals); empty = just `method`.
    # Each row: a method's knobs (`name` and any knobs), or `preset: <conf/method name>` plus
    # the knobs it changes.
    configurations: list[Any] = field(default_factory=list)
    letters: dict[str, str] = field(default_factory=dict)  # mixture letter -> model name
    # the paper's published numbers for a preset's tables (`paper.table3`): read by
    # harness.analysis.paper to set them beside ours; no effect on the run
    paper: dict[str, Any] = field(default_factory=dict)
    # all: the whole study; propose: only the proposal stages (of `phase_model`, null = every
    # proposer), phase 1 of the two-phase SLURM pattern (slurm/README.md)
    phase: str = "all"
    phase_model: str | None = None
    # Filled by `to_run_config`: every model the run needs, by name (proposer and aggregator).
    models: dict[str, ModelConfig] = field(default_factory=dict)


def options(group: str) -> list[str]:
    """Names of the YAML options of a config group (conf/<group>/*.yaml)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def load_model_config(name: str, key: str | None = None) -> ModelConfig:
    """conf/model/<name>.yaml; an unknown name is an error naming `key`, the setting holding it."""
    path = CONF_DIR / "model" / f"{name}.yaml"
    if not path.exists():
        where = f"{key}={name!r}: " if key else ""
        raise ConfigError(
            f"{where}unknown model {name!r}; available: {', '.join(options('model'))}"
        )
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
    check_keys(cfg)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(RunConfig), cfg)
        run: RunConfig = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        raise ConfigError(f"bad config value at {key}: {e.msg if hasattr(e, 'msg') else e}") from e
    if run_dir is not None:
        run.run_dir = run_dir
    run.method = methods.knobs_from(run.method, "method")
    run.configurations = [
        methods.knobs_from(preset_row(row, f"configurations[{i}]"), f"configurations[{i}]")
        for i, row in enumerate(run.configurations)
    ]
    validate(run)
    run.models = {run.model.name: run.model}
    for m, key in study_rows(run):
        names = [
            (m.model, f"{key}.model"),
            (getattr(m, "aggregator", None), f"{key}.aggregator"),
            (run.benchmark.judge, "benchmark.judge"),
        ]
        names += [(run.letters[c], f"letters.{c}") for c in getattr(m, "mixture", "")]
        for name, where in names:
            if name is not None and name not in run.models:
                run.models[name] = load_model_config(name, where)
                validate_model(run.models[name], f"conf/model/{name}.yaml")
    check_context(run)
    if run.phase_model is not None and run.phase_model not in run.models:
        raise ConfigError(
            f"phase_model={run.phase_model!r} is not a model of this study; "
            f"its models: {', '.join(sorted(run.models))}"
        )
    return run


SECTIONS = {
    "": RunConfig,
    "model": ModelConfig,
    "benchmark": BenchmarkConfig,
    "engine": EngineConfig,
    "logger": LoggerConfig,
}


def check_keys(cfg: DictConfig) -> None:
    """Keys added with `+key=value` that the schema does not have (Hydra lets them through)."""
    for section, cls in SECTIONS.items():
        node = cfg.get(section) if section else cfg
        if not OmegaConf.is_dict(node):
            continue
        allowed = [f.name for f in fields(cls)] + ([] if section else ["hydra"])
        unknown = sorted(set(node) - set(allowed))
        if unknown:
            key = f"{section}.{unknown[0]}" if section else unknown[0]
            raise ConfigError(
                f"{key} is not a config key; {section or 'top-level'} keys: "
                f"{', '.join(a for a in allowed if a != 'hydra')}"
            )
    if OmegaConf.is_dict(cfg.get("method")):  # a typed knobs node drops keys it does not have
        methods.knobs_from(OmegaConf.to_container(cfg.method, resolve=True), "method")


def study_rows(run: RunConfig) -> list[tuple[Any, str]]:
    """(knobs, config key) of each configuration: the study's rows, or `method`."""
    rows = [(m, f"configurations[{i}]") for i, m in enumerate(run.configurations)]
    return rows or [(run.method, "method")]


def validate(run: RunConfig) -> None:
    b = run.benchmark
    for m, key in study_rows(run):
        methods.make(m, key, run.letters)
        for name, knob in ((m.model, "model"), (getattr(m, "aggregator", None), "aggregator")):
            if name is not None:
                load_model_config(name, f"{key}.{knob}")  # raises with the list of models
    if b.limit is not None and not 1 <= b.limit <= MAX_LIMIT:
        raise ConfigError(
            f"benchmark.limit must be in [1, {MAX_LIMIT}] or null for all items (got {b.limit})"
        )
    check_tokens(b.judge_max_tokens, "benchmark.judge_max_tokens")
    if not 0 <= run.seed <= MAX_SEED:
        raise ConfigError(f"seed must be in [0, {MAX_SEED}] (got {run.seed})")
    if b.judge is not None:
        load_model_config(b.judge, "benchmark.judge")
    if run.engine.kind not in KINDS:  # fails here, not at the first stage
        raise ConfigError(f"engine.kind={run.engine.kind!r}; allowed: {', '.join(sorted(KINDS))}")
    if run.logger.mode not in LOGGER_MODES:
        raise ConfigError(f"logger.mode={run.logger.mode!r}; allowed: {', '.join(LOGGER_MODES)}")
    validate_model(run.model, "model")
    if run.phase not in PHASES:
        raise ConfigError(f"phase={run.phase!r}; allowed: {', '.join(PHASES)}")
    if run.phase_model is not None and run.phase != "propose":
        raise ConfigError("phase_model is only used with phase=propose")


def context_limit(run: RunConfig, name: str) -> int | None:
    """The model's context in tokens when the config sets it (engine or model max_model_len)."""
    own = run.models[name].engine_kwargs
    key = "engine_kwargs" if "max_model_len" in own else "engine.kwargs"
    limit = {**run.engine.kwargs, **own}.get("max_model_len")
    if limit is not None and (not isinstance(limit, int) or limit < 2):
        raise ConfigError(
            f"{key}.max_model_len (of {name}) must be an integer >= 2 (got {limit!r})"
        )
    return limit


def check_context(run: RunConfig) -> None:
    """Every token cap must leave room for a prompt in the context of the model it applies to."""
    caps = []
    for m, key in study_rows(run):
        model = m.model or run.model.name
        proposers = [run.letters[c] for c in getattr(m, "mixture", "")] or [model]
        aggregator = getattr(m, "aggregator", None) or model
        caps += [(f"{key}.max_tokens", m.max_tokens, name) for name in proposers]
        for knob in ("aggregator_max_tokens", "rank_max_tokens"):
            if hasattr(m, knob):
                caps.append((f"{key}.{knob}", getattr(m, knob), aggregator))
    if run.benchmark.judge is not None:
        caps.append(
            ("benchmark.judge_max_tokens", run.benchmark.judge_max_tokens, run.benchmark.judge)
        )
    for key, tokens, name in caps:
        limit = context_limit(run, name)
        if limit is not None and tokens >= limit:
            raise ConfigError(
                f"{key}={tokens} leaves no room for the prompt in the context of {name} "
                f"(max_model_len={limit}); use fewer tokens"
            )


def preset_row(row, key: str) -> dict:
    """A study row; `preset: <name>` starts it from conf/method/<name>.yaml."""
    if OmegaConf.is_config(row):
        row = OmegaConf.to_container(row)
    if not isinstance(row, dict):
        raise ConfigError(
            f"{key} must be a mapping of a method's knobs, e.g. {{name: self_moa, k: 4}} "
            f"(got {row!r})"
        )
    row = dict(row)
    preset = row.pop("preset", None)
    if preset is None:
        return row
    path = CONF_DIR / "method" / f"{preset}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"{key}.preset={preset!r} is not a method preset; "
            f"allowed: {', '.join(options('method'))}"
        )
    base = OmegaConf.to_container(OmegaConf.load(path))
    for entry in base.pop("defaults", []):  # `/method_schema/<method>@_here_` names the method
        if isinstance(entry, str) and entry.startswith("/method_schema/"):
            base.setdefault("name", entry.split("/")[2].split("@")[0])
    return {**base, **row}


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
