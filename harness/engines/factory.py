"""Engines chosen from config by one factory: the run's engine, or a model's own preset.

`make_engine(model, engine, seed)` loads a model with the engine kind of its preset
(`model.engine`, a conf/engine name, else the run's `engine`); `model_identity` is the model
part of every store key. Engine kinds are listed in `harness.engines.REGISTRY`.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from omegaconf import OmegaConf

from harness.config import CONF_DIR, EngineConfig, ModelConfig, options
from harness.engines import Engine, engine_class
from harness.errors import ConfigError
from harness.models import prepare_models

log = logging.getLogger(__name__)


def load_engine_config(name: str) -> EngineConfig:
    """The preset conf/engine/<name>.yaml as a typed EngineConfig."""
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


def make_engine(
    model: ModelConfig, engine: EngineConfig, seed: int = 0, planned_tokens: float | None = None
) -> Engine:
    """Load `model` with its engine (see `engine_config`; its `engine_kwargs` merged).

    `planned_tokens`: the decode tokens this load is for; `enforce_eager: auto` compiles the
    model when they reach the engine's `compile_crossover_tokens` (harness.engines.vllm).
    """
    engine = engine_config(model, engine)
    if (
        planned_tokens is not None
        and {**engine.kwargs, **model.engine_kwargs}.get("enforce_eager") == "auto"
    ):
        from harness.engines.vllm import compile_choice

        eager, why = compile_choice(engine, planned_tokens)
        log.info("%s: enforce_eager auto -> %s (%s)", model.name, eager, why)
        engine = replace(engine, kwargs={**engine.kwargs, "enforce_eager": eager})
        model = replace(model, engine_kwargs={**model.engine_kwargs, "enforce_eager": eager})
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
    for m in models.values():  # engine arguments against the engine's own schema
        own = engine_config(m, engine)
        check = getattr(engine_class(own.kind), "check", None)
        if check is not None:
            check(m, own)
    return {name: model_identity(m, engine) for name, m in models.items()}


def prepare_weights(models: dict[str, ModelConfig], engine: EngineConfig) -> dict[str, float]:
    """Prepare (harness.models.prepare_models) the models whose engine loads their local weights,
    before a run; a replay or served run needs no GGUF download or conversion. Returns the seconds
    each preparation took."""
    return prepare_models({
        name: m
        for name, m in models.items()
        if engine_class(engine_config(m, engine).kind).reads_weights
    })  # fmt: skip


def nondeterministic(models: dict[str, ModelConfig], engine: EngineConfig) -> list[str]:
    """Names of the models whose engine does not repeat texts for equal seeds (hosted APIs)."""
    found = []
    for name, m in models.items():
        e = engine_config(m, engine)
        if not engine_class(e.kind).is_deterministic(m, e):
            found.append(name)
    return found
