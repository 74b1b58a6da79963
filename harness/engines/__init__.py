"""Engines by kind, chosen from config by one factory: `engine.kind` names a module here.

    vllm    in-process vLLM (CPU build or CUDA), one resident model (harness.engines.vllm)
    openai  an OpenAI-compatible server: `vllm serve` replicas or a hosted API
            (harness.engines.openai)

Per model: a model config may name its own engine preset (`engine: openai` in conf/model/*.yaml,
settings in its `engine_kwargs`), e.g. proposers served while the aggregator runs in-process.
`make_engine` and `model_identity` (harness.engines.factory) use that preset instead of the
run's `engine`. Before a study, `factory.probe(run.models, run.engine)` checks every served
model's servers (reachable, key accepted, model listed) and raises ConfigError naming the URL
and the cause.

Adding an engine kind: a module with a class that has `__init__(model, engine, seed)`, `chat`,
`close` and a static `identity(model, engine)` (the model part of store keys), and a line in
KINDS (harness/engines/base.py).
"""

from __future__ import annotations

from harness.engines.base import (
    KINDS,
    PROMPT_TOO_LONG,
    Completion,
    Conversation,
    Engine,
    Output,
    Sampling,
    too_long,
)

__all__ = [
    "KINDS",
    "PROMPT_TOO_LONG",
    "Completion",
    "Conversation",
    "Engine",
    "Output",
    "Sampling",
    "too_long",
]
