"""Engines by kind, chosen from config by one factory: `engine.kind` names a module here.

    vllm    in-process vLLM (CPU build or CUDA), one resident model (harness.engines.vllm)
    openai  an OpenAI-compatible server: `vllm serve` replicas or a hosted API
            (harness.engines.openai)
    replay  no model: instant deterministic texts, to measure the harness's own cost at scale
            (harness.engines.replay)

Per model: a model config may name its own engine preset (`engine: openai` in conf/model/*.yaml,
settings in its `engine_kwargs`), e.g. proposers served while the aggregator runs in-process.
`make_engine` and `model_identity` (harness.engines.factory) use that preset instead of the
run's `engine`. Before a study, `factory.probe(run.models, run.engine)` checks every served
model's servers (reachable, key accepted, model listed) and raises ConfigError naming the URL
and the cause.

Adding an engine kind: a module with a class that follows `Engine` (harness.engines.base: `kind`,
`__init__(model, engine, seed)`, `chat`, `close`, static `identity` and `is_deterministic`),
added to REGISTRY below, and a preset conf/engine/<name>.yaml with `kind: <kind>`.
"""

from __future__ import annotations

from harness.engines.base import (
    PROMPT_TOO_LONG,
    SYSTEM_FOLDED,
    TEMPLATE_ERROR,
    Completion,
    Conversation,
    Engine,
    Output,
    Sampling,
    template_error,
    too_long,
)
from harness.engines.openai import OpenAIEngine
from harness.engines.replay import ReplayEngine
from harness.engines.vllm import VllmEngine
from harness.errors import ConfigError

REGISTRY: dict[str, type[Engine]] = {
    cls.kind: cls for cls in (VllmEngine, OpenAIEngine, ReplayEngine)
}


def engine_class(kind: str) -> type[Engine]:
    if kind not in REGISTRY:
        raise ConfigError(f"engine.kind={kind!r}; allowed: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[kind]


__all__ = [
    "PROMPT_TOO_LONG",
    "REGISTRY",
    "SYSTEM_FOLDED",
    "TEMPLATE_ERROR",
    "Completion",
    "Conversation",
    "Engine",
    "Output",
    "Sampling",
    "engine_class",
    "template_error",
    "too_long",
]
