"""The served engine's settings (harness.engines.openai), typed and checked before the study.

They are `engine.kwargs` of an engine with `kind: openai` (conf/engine/openai.yaml), merged with
the model's `engine_kwargs` (the model's win). `ServedSettings` names each one; `served_settings`
converts the merged mapping and raises ConfigError naming the setting and the cause (an unknown
name, a value of the wrong type, an impossible value, a missing URL), so nothing is cast later.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness.config import EngineConfig, ModelConfig
from harness.errors import ConfigError


@dataclass
class ServedSettings:
    # ".../v1" URLs, load-balanced (least requests in flight); replicas of one model must serve
    # the same weights. A single URL may be given as a string.
    base_urls: list[str] = field(default_factory=list)
    urls_file: str | None = None  # one base URL a line (slurm/serve.sbatch writes it); adds
    # NAME of the environment variable holding the key (null: no key). The key is read by
    # `api_key` and never stored, logged or put in an error message.
    api_key_env: str | None = None
    # the model name on the server; null: the model's `name`, else its `path`, whichever the
    # server lists
    served_model: str | None = None
    concurrency: int = 32  # requests in flight at once, over all URLs
    # per-request timeout; retries with exponential backoff (and Retry-After) on 429, 5xx,
    # timeouts and refused connections, each retry on the least-loaded URL
    timeout_s: float = 600.0
    max_retries: int = 5
    backoff_s: float = 1.0
    n_per_request: bool = True  # send `n` in one request (vLLM, OpenAI); false: n with seed + j
    deterministic: bool | None = None  # equal seeds give equal texts; null: vLLM servers only
    extra_body: dict[str, Any] = field(default_factory=dict)  # more request fields: {top_k: 20}
    probe_timeout_s: float = 10.0  # the check of each URL before the study
    # recorded in the identity next to what the server reports (e.g. the server's dtype, or a
    # dated hosted model version)
    revision: str | None = None


SETTINGS = [f.name for f in fields(ServedSettings)]


def served_settings(model: ModelConfig, engine: EngineConfig) -> ServedSettings:
    """The settings of `model` (defaults <- engine.kwargs <- model.engine_kwargs), checked; the
    base URLs of `urls_file` added, without repeats or trailing slashes."""
    given = {**engine.kwargs, **model.engine_kwargs}
    unknown = sorted(set(given) - set(SETTINGS))
    if unknown:
        raise ConfigError(
            f"engine {engine.name} (kind openai), model {model.name}: unknown settings {unknown}; "
            f"allowed: {', '.join(sorted(SETTINGS))}"
        )
    if isinstance(given.get("base_urls"), str):
        given["base_urls"] = [given["base_urls"]]
    elif given.get("base_urls") is None:
        given["base_urls"] = []
    try:
        merged = OmegaConf.merge(OmegaConf.structured(ServedSettings), given)
        s: ServedSettings = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise ConfigError(
            f"engine.kwargs.{e.full_key} (engine {engine.name}, model {model.name}): "
            f"{str(e).splitlines()[0]}"
        ) from None
    urls = list(s.base_urls)
    if s.urls_file:
        path = Path(s.urls_file).expanduser()
        if not path.is_file():
            raise ConfigError(f"engine.kwargs.urls_file={str(path)!r}: no such file")
        urls += [u.strip() for u in path.read_text().splitlines() if u.strip()]
    if not urls:
        raise ConfigError(
            f"model {model.name}: engine {engine.name} needs engine.kwargs.base_urls "
            "(e.g. [http://127.0.0.1:8000/v1]) or engine.kwargs.urls_file"
        )
    s.base_urls = [u.rstrip("/") for u in dict.fromkeys(urls)]
    if s.concurrency < 1 or s.max_retries < 0 or s.timeout_s <= 0:
        raise ConfigError(
            "engine.kwargs: need concurrency >= 1, max_retries >= 0 and timeout_s > 0 "
            f"(got {s.concurrency}, {s.max_retries}, {s.timeout_s})"
        )
    return s


def api_key(s: ServedSettings) -> str:
    name = s.api_key_env
    if not name:
        return "EMPTY"  # vLLM servers started without --api-key accept any key
    key = os.environ.get(name)
    if not key:
        raise ConfigError(f"engine.kwargs.api_key_env={name!r}: that environment variable is unset")
    return key
