"""Typed run configuration: the dataclasses behind the Hydra YAML in conf/ (a pure schema).

The Hydra config is converted once, at the entry point: `to_run_config` merges it onto these
dataclasses and checks what the schema alone can tell (keys, ranges, allowed names).
Everything that needs the harness's parts (method knobs, model collection, context checks)
is checked by `harness.plan.checked_run`, which calls this first; nothing below the entry
point sees a DictConfig. This module imports nothing of the harness but its leaves.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import harness.paths  # noqa: F401 - registers the resolvers of conf/paths/
from harness.errors import ConfigError
from harness.paths import absolute

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
LOGGER_MODES = ("offline", "online", "disabled")
PHASES = ("all", "propose")
MAX_SEED = 2**32 - 1  # numpy's limit; vLLM seeds numpy, torch and random with it
MAX_TOKENS = 131072  # a token cap beyond this is a typo


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
    # what the dry run sizes memory from when the model is not on disk (hub ids): `params` (the
    # parameter count) and the KV-cache figures of its config.json (num_hidden_layers,
    # num_key_value_heads, head_dim; MLA: kv_lora_rank, qk_rope_head_dim); harness.sizing
    arch: dict[str, Any] = field(default_factory=dict)


@dataclass
class EngineConfig:
    name: str = MISSING
    kind: str = "vllm"  # which engine module loads models (harness.engines.REGISTRY)
    # rough batched decode and prompt (prefill) rates, only for the time the plan and the dry
    # run print; 0: not counted
    tokens_per_s_hint: float = 0.0
    prompt_tokens_per_s_hint: float = 0.0
    env: dict[str, str] = field(default_factory=dict)  # set before vLLM is imported
    kwargs: dict[str, Any] = field(default_factory=dict)  # passed straight to vllm.LLM
    # the dry run's device where no GPU is visible (a login node): one GPU's memory and the GPUs
    # of a node; null: the host's RAM (CPU engines). A visible GPU is used instead.
    device_memory_gib: float | None = None
    device_count: int = 1
    # kwargs.enforce_eager: auto compiles a model when a load's planned decode tokens reach this
    # (compile seconds / per-token saving; scripts/bench.py --compile measures it)
    compile_crossover_tokens: int = 0


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
    # a method's typed knobs (harness.methods: one Knobs dataclass per method), made typed by
    # harness.plan.checked_run
    method: Any = MISSING
    # a benchmark's typed knobs (harness.benchmarks: one Knobs dataclass per benchmark)
    benchmark: Any = MISSING
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
    # print what the study needs (generations, tokens, hours, memory per model) and stop,
    # loading no model (harness.dryrun); exit 2 when a model cannot fit
    dry_run: bool = False
    # Filled by `harness.plan.checked_run`: every model the run needs, by name (proposer,
    # aggregator, judge).
    models: dict[str, ModelConfig] = field(default_factory=dict)


def options(group: str) -> list[str]:
    """Names of the YAML options of a config group (conf/<group>/*.yaml)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def public_groups() -> str:
    """`group: option, ...` for every config group of conf/ (the typed schema groups,
    `method_schema` and the like, stay hidden): the groups of `harness run --help`."""
    import textwrap

    groups = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())
    return "\n".join(
        textwrap.fill(f"{g}: {', '.join(options(g))}", 96, initial_indent="  ",
                      subsequent_indent="      ", break_on_hyphens=False)
        for g in groups
    )  # fmt: skip


OmegaConf.register_new_resolver("harness_groups", public_groups, replace=True)


def is_option(group: str, name: object) -> bool:
    """`name` is a plain option name of `group` (conf/<group>/<name>.yaml), not a path."""
    text = str(name)
    return (
        "/" not in text
        and "\\" not in text
        and not text.startswith(".")
        and ((CONF_DIR / group / f"{text}.yaml").is_file())
    )


def load_model_config(name: str, key: str | None = None) -> ModelConfig:
    """conf/model/<name>.yaml; an unknown name (or a path) is an error naming `key`, the setting
    holding it."""
    path = CONF_DIR / "model" / f"{name}.yaml"
    if not is_option("model", name):
        where = f"{key}={name!r}: " if key else ""
        raise ConfigError(
            f"{where}unknown model {name!r}; available: {', '.join(options('model'))}"
        )
    merged = OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(path))
    return OmegaConf.to_object(merged)


def to_run_config(cfg: DictConfig, run_dir: str | None = None) -> RunConfig:
    """Merge the composed Hydra config onto the dataclass schema, convert it, check its values.

    `method` and `configurations` stay as composed (a method's knobs or mappings of them): the
    plan makes them typed (harness.plan.checked_run).
    """
    check_keys(cfg)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(RunConfig), cfg)
        run: RunConfig = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        raise ConfigError(f"bad config value at {key}: {e.msg if hasattr(e, 'msg') else e}") from e
    if run_dir is not None:
        run.run_dir = run_dir
    if not str(run.store_dir or "").strip():
        raise ConfigError("store_dir is empty; leave it out for the default (paths.store)")
    run.store_dir = absolute(run.store_dir) or run.store_dir  # relative: from the project root
    validate(run)
    return run


SECTIONS = {
    "": RunConfig,
    "model": ModelConfig,
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


WANDB_NO_KEY = (
    "logger.mode=online needs a W&B API key: set WANDB_API_KEY or run `wandb login` (or keep "
    "logger.mode=offline and `wandb sync` the run later)"
)


def wandb_key_known(environ: dict | None = None) -> bool:
    """A W&B key is there without asking: WANDB_API_KEY, or a netrc entry for the W&B host."""
    import os
    from pathlib import Path

    env = os.environ if environ is None else environ
    if env.get("WANDB_API_KEY", "").strip():
        return True
    host = env.get("WANDB_BASE_URL", "https://api.wandb.ai").split("//")[-1].split("/")[0]
    netrc = Path(env.get("NETRC") or "~/.netrc").expanduser()
    try:
        return f"machine {host.split(':')[0]}" in netrc.read_text(errors="replace")
    except OSError:
        return False


def validate(run: RunConfig) -> None:
    """The values the schema alone can check (a method's knobs are checked by the method, a
    benchmark's by the benchmark)."""
    if not 0 <= run.seed <= MAX_SEED:
        raise ConfigError(f"seed must be in [0, {MAX_SEED}] (got {run.seed})")
    if run.logger.mode not in LOGGER_MODES:
        raise ConfigError(f"logger.mode={run.logger.mode!r}; allowed: {', '.join(LOGGER_MODES)}")
    if run.logger.mode == "online" and not wandb_key_known():
        raise ConfigError(WANDB_NO_KEY)
    if run.phase not in PHASES:
        raise ConfigError(f"phase={run.phase!r}; allowed: {', '.join(PHASES)}")
    if run.phase_model is not None and run.phase != "propose":
        raise ConfigError("phase_model is only used with phase=propose")


def check_tokens(value: int, key: str) -> None:
    if not 1 <= value <= MAX_TOKENS:
        raise ConfigError(f"{key} must be in [1, {MAX_TOKENS}] (got {value})")


def preset_row(row, key: str) -> dict:
    """A study row; `preset: <name>` starts it from conf/method/<name>.yaml."""
    if OmegaConf.is_config(row):
        row = OmegaConf.to_container(row)
    if not isinstance(row, dict):
        raise ConfigError(
            f"{key} must be a mapping of a method's knobs, e.g. {{name: <method>, k: 4}} "
            f"(got {row!r})"
        )
    row = dict(row)
    preset = row.pop("preset", None)
    if preset is None:
        return row
    path = CONF_DIR / "method" / f"{preset}.yaml"
    if not is_option("method", preset):
        raise ConfigError(
            f"{key}.preset={preset!r} is not a method preset; "
            f"allowed: {', '.join(options('method'))}"
        )
    base = OmegaConf.to_container(OmegaConf.load(path))
    for entry in base.pop("defaults", []):  # `/method_schema/<method>@_here_` names the method
        if isinstance(entry, str) and entry.startswith("/method_schema/"):
            base.setdefault("name", entry.split("/")[2].split("@")[0])
    return {**base, **row}


# The root config (conf/config.yaml) lists this schema first in its defaults, so every group is
# typed while it is composed: a misspelt key fails at once, and every field can be overridden.
ConfigStore.instance().store(name="run_schema", node=RunConfig)
