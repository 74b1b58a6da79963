"""Engines by kind, chosen from config by one factory: `engine.kind` names a module here.

    vllm    in-process vLLM (CPU build or CUDA), one resident model (harness.engines.vllm)
    openai  an OpenAI-compatible server: `vllm serve` replicas or a hosted API
            (harness.engines.openai)

Per model: a model config may name its own engine preset (`engine: openai` in conf/model/*.yaml,
settings in its `engine_kwargs`), e.g. proposers served while the aggregator runs in-process.
`make_engine` and `model_identity` use that preset instead of the run's `engine`.
Before a study, `probe(run.models, run.engine)` checks every served model's servers (reachable,
key accepted, model listed) and raises ConfigError naming the URL and the cause.

Adding an engine kind: a module with a class that has `__init__(model, engine, seed)`, `chat`,
`close` and a static `identity(model, engine)` (the model part of store keys), and a line in
KINDS.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from harness.engines.base import (
    PROMPT_TOO_LONG,
    Completion,
    Conversation,
    Engine,
    Output,
    Sampling,
    too_long,
)
from harness.errors import ConfigError

if TYPE_CHECKING:
    from harness.config import EngineConfig, ModelConfig

KINDS = {
    "vllm": "harness.engines.vllm:VllmEngine",
    "openai": "harness.engines.openai:OpenAIEngine",
}


def engine_class(kind: str) -> type:
    if kind not in KINDS:
        raise ConfigError(f"engine.kind={kind!r}; allowed: {', '.join(sorted(KINDS))}")
    module, name = KINDS[kind].split(":")
    return getattr(import_module(module), name)


def load_engine_config(name: str) -> EngineConfig:
    """The preset conf/engine/<name>.yaml as a typed EngineConfig."""
    from omegaconf import OmegaConf

    from harness.config import CONF_DIR, EngineConfig, options

    path = CONF_DIR / "engine" / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown engine {name!r}; available: {', '.join(options('engine'))}")
    return OmegaConf.to_object(
        OmegaConf.merge(OmegaConf.structured(EngineConfig), OmegaConf.load(path))
    )


def engine_config(model: ModelConfig, engine: EngineConfig) -> EngineConfig:
    """The engine that runs `model`: its own preset (`model.engine`) or else the run's."""
    name = getattr(model, "engine", None)
    if name is None or name == engine.name:
        return engine
    return load_engine_config(name)


def make_engine(model: ModelConfig, engine: EngineConfig, seed: int = 0) -> Engine:
    """Load `model` with its engine (see `engine_config`; its `engine_kwargs` merged)."""
    engine = engine_config(model, engine)
    return engine_class(engine.kind)(model, engine, seed)


def model_identity(model: ModelConfig, engine: EngineConfig) -> str:
    """The model part of every store key: what fixes the numbers the model produces."""
    engine = engine_config(model, engine)
    return engine_class(engine.kind).identity(model, engine)


def probe(models: dict[str, ModelConfig], engine: EngineConfig) -> dict[str, str]:
    """Check every model's engine before the study; returns model name -> identity.

    Served models: each base URL answers, accepts the key and lists the model (ConfigError naming
    the URL and the cause otherwise). In-process models: only the preset and settings are read.
    """
    return {name: model_identity(m, engine) for name, m in models.items()}


def nondeterministic(models: dict[str, ModelConfig], engine: EngineConfig) -> list[str]:
    """Names of the models whose engine does not repeat texts for equal seeds (hosted APIs)."""
    found = []
    for name, m in models.items():
        e = engine_config(m, engine)
        check = getattr(engine_class(e.kind), "is_deterministic", None)
        if check is not None and not check(m, e):
            found.append(name)
    return found


__all__ = [
    "PROMPT_TOO_LONG",
    "Completion",
    "Conversation",
    "Engine",
    "KINDS",
    "Output",
    "Sampling",
    "engine_class",
    "engine_config",
    "load_engine_config",
    "make_engine",
    "model_identity",
    "nondeterministic",
    "probe",
    "too_long",
]
