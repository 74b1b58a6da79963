"""Engine arguments checked against vLLM's own schema before a model loads.

`check(model, engine)`: every key of `engine.kwargs` merged with the model's `engine_kwargs`
must be a field of `vllm.engine.arg_utils.EngineArgs`, and a value of a field typed as a
`Literal` (dtype, ...) one of its values; the keys the harness sets itself (model, seed,
trust_remote_code) are refused. One ConfigError names the key and the reason, before seconds of
vLLM start-up.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing

from harness.config import EngineConfig, ModelConfig
from harness.errors import ConfigError

OURS = {"model": "model.path / model.gguf", "seed": "seed", "trust_remote_code": "model's"}


def engine_fields() -> dict[str, dataclasses.Field]:
    from vllm.engine.arg_utils import EngineArgs

    return {f.name: f for f in dataclasses.fields(EngineArgs)}


def check(model: ModelConfig, engine: EngineConfig, kwargs: dict) -> None:
    """ConfigError naming the first key of `kwargs` vLLM would refuse, and why."""
    known = engine_fields()
    for key, value in kwargs.items():
        own = key in model.engine_kwargs
        where = f"model.engine_kwargs.{key}" if own else f"engine.kwargs.{key}"
        whose = f" (model {model.name})" if own else f" (engine {engine.name})"
        if key in OURS:
            raise ConfigError(f"{where}{whose}: set by the harness (use {OURS[key]} instead)")
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"{where}{whose} is not a vLLM engine argument (EngineArgs){hint}")
        kind = known[key].type
        if typing.get_origin(kind) is typing.Literal:
            allowed = typing.get_args(kind)
            if value not in allowed:
                raise ConfigError(
                    f"{where}={value!r}{whose}: vLLM allows {', '.join(map(repr, allowed))}"
                )
