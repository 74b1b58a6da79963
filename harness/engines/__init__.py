"""Engines by kind, chosen from config by one factory: `engine.kind` names a module here.

    vllm   in-process vLLM (CPU build or CUDA), one resident model (harness.engines.vllm)

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

KINDS = {"vllm": "harness.engines.vllm:VllmEngine"}


def engine_class(kind: str) -> type:
    if kind not in KINDS:
        raise ConfigError(f"engine.kind={kind!r}; allowed: {', '.join(sorted(KINDS))}")
    module, name = KINDS[kind].split(":")
    return getattr(import_module(module), name)


def make_engine(model: ModelConfig, engine: EngineConfig, seed: int = 0) -> Engine:
    """Load `model` with the engine kind of `engine` (the model's own `engine_kwargs` merged)."""
    return engine_class(engine.kind)(model, engine, seed)


def model_identity(model: ModelConfig, engine: EngineConfig) -> str:
    """The model part of every store key: what fixes the numbers the model produces."""
    return engine_class(engine.kind).identity(model, engine)


__all__ = [
    "PROMPT_TOO_LONG",
    "Completion",
    "Conversation",
    "Engine",
    "KINDS",
    "Output",
    "Sampling",
    "engine_class",
    "make_engine",
    "model_identity",
    "too_long",
]
