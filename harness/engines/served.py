"""The served engine's settings (harness.engines.openai), typed and checked before the study.

They are `engine.kwargs` of an engine with `kind: openai` (conf/engine/openai.yaml), merged with
the model's `engine_kwargs` (the model's win). `ServedSettings` names each one; `served_settings`
converts the merged mapping and raises ConfigError naming the setting and the cause (an unknown
name, a value of the wrong type, an impossible value, a missing URL), so nothing is cast later.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness.config import EngineConfig, ModelConfig
from harness.errors import ConfigError
from harness.paths import what_is


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
        urls += read_urls_file(Path(s.urls_file).expanduser())
    if not urls:
        raise ConfigError(
            f"model {model.name}: engine {engine.name} needs engine.kwargs.base_urls "
            "(e.g. [http://127.0.0.1:8000/v1]) or engine.kwargs.urls_file"
        )
    bad = [u for u in urls if not u.startswith(("http://", "https://")) or "://" == u[-3:]]
    if bad:
        raise ConfigError(f"engine.kwargs.base_urls: {bad[0]!r} is not an http(s):// URL")
    s.base_urls = [u.rstrip("/") for u in dict.fromkeys(urls)]
    for name, value, low in [
        ("concurrency", s.concurrency, 1),
        ("max_retries", s.max_retries, 0),
        ("timeout_s", s.timeout_s, None),
        ("backoff_s", s.backoff_s, 0),
        ("probe_timeout_s", s.probe_timeout_s, None),
    ]:
        if not math.isfinite(value) or (value <= 0 if low is None else value < low):
            bound = "> 0" if low is None else f">= {low}"
            raise ConfigError(f"engine.kwargs.{name} must be a finite number {bound} (got {value})")
    return s


def read_urls_file(path: Path) -> list[str]:
    """The base URLs of a URLs file, one a line; ConfigError naming the file and the cause."""
    kind = what_is(path)
    if kind != "a file":
        what = "no such file" if kind is None else f"it is {kind}, not a file"
        raise ConfigError(f"engine.kwargs.urls_file={str(path)!r}: {what}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"engine.kwargs.urls_file={str(path)!r}: unreadable ({e})") from None
    urls = [u.strip() for u in text.splitlines() if u.strip() and not u.startswith("#")]
    if not urls:
        raise ConfigError(
            f"engine.kwargs.urls_file={str(path)!r} is empty: no base URL in it (are the "
            "servers started? slurm/serve.sbatch writes one line per ready server)"
        )
    return urls


def api_key(s: ServedSettings) -> str:
    name = s.api_key_env
    if not name:
        return "EMPTY"  # vLLM servers started without --api-key accept any key
    key = os.environ.get(name)
    if not key:
        raise ConfigError(f"engine.kwargs.api_key_env={name!r}: that environment variable is unset")
    return key
