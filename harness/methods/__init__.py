"""Ensemble methods by name: one module per method, one line each in REGISTRY below.

Each method is a `Method` subclass (harness.methods.base) with its typed knobs (`Knobs`). The
valid `method=` names, each method's knobs and defaults, and their validation all come from
here: `conf/method/<name>.yaml` presets build on the method's knobs schema (registered with
Hydra as `method_schema/<name>`) and hold only what they change.

Adding a method: write `harness/methods/<name>.py` (a Method subclass), add it to REGISTRY,
and add `conf/method/<name>.yaml`.
"""

from __future__ import annotations

from dataclasses import fields

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness.errors import ConfigError
from harness.methods.base import (
    Configuration,
    Job,
    Knobs,
    Method,
    Request,
    Step,
    TokenCap,
    item_seed,
)
from harness.methods.majority_vote import MajorityVote
from harness.methods.mixed_moa import MixedMoA
from harness.methods.rank_fuse import RankFuse
from harness.methods.self_moa import SelfMoA
from harness.methods.self_moa_seq import SelfMoASeq
from harness.methods.single import Single
from harness.methods.usc import USC

REGISTRY: dict[str, type[Method]] = {
    cls.name: cls for cls in (Single, MajorityVote, SelfMoA, MixedMoA, SelfMoASeq, USC, RankFuse)
}


def method_class(name: str, key: str = "method") -> type[Method]:
    if name not in REGISTRY:
        raise ConfigError(f"{key}.name={name!r} is not a method; allowed: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def knobs_from(values, key: str) -> Knobs:
    """A method's typed knobs from a mapping (a study row) or a knobs object; names bad keys."""
    if isinstance(values, Knobs):
        return values
    values = OmegaConf.to_container(values) if OmegaConf.is_config(values) else dict(values)
    name = values.get("name")
    if not isinstance(name, str):
        raise ConfigError(f"{key}.name is required: one of {', '.join(REGISTRY)}")
    cls = method_class(name, key).Knobs
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{key}.{unknown[0]} is not a knob of {name}; its knobs: {', '.join(allowed)}"
        )
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), values))
    except OmegaConfBaseException as e:
        raise ConfigError(f"{key}.{e.full_key}: {str(e).splitlines()[0]}") from e


def knobs(name: str, **values) -> Knobs:
    """Knobs of method `name` with `values` over its defaults (for code and tests)."""
    return knobs_from({"name": name, **values}, "method")


def reference_knobs(model: str, max_tokens: int) -> Knobs:
    """Knobs of the reference line on `model` (the method that declares `reference`): greedy."""
    cls = next(cls for cls in REGISTRY.values() if cls.reference)
    return knobs(cls.name, model=model, max_tokens=max_tokens)


def declares(name: str, flag: str) -> bool:
    """Whether method `name` (e.g. a record's or a summary's `method`) sets the class flag
    `flag` (`reference`, `needs_answer`, `in_regression`, `k_lines`); False for a name no
    method has (a run written by another version)."""
    cls = REGISTRY.get(name)
    return cls is not None and bool(getattr(cls, flag))


def declaring(flag: str) -> list[str]:
    """The names of the methods that set the class flag `flag`, in REGISTRY order."""
    return [name for name in REGISTRY if declares(name, flag)]


def is_reference(name: str) -> bool:
    """Whether method `name` is the reference line (the plan's baseline)."""
    return declares(name, "reference")


def make(values: Knobs, key: str, letters: dict[str, str]) -> Method:
    """The validated method of `values`."""
    cls = method_class(values.name, key)
    cls.validate(values, key, letters)
    return cls(values)


# conf/method/<name>.yaml starts from its schema: `defaults: [/method_schema/<name>@_here_]`
for _cls in REGISTRY.values():
    ConfigStore.instance().store(
        group="method_schema", name=_cls.name, node=_cls.Knobs(name=_cls.name)
    )

__all__ = [
    "REGISTRY",
    "Configuration",
    "Job",
    "Knobs",
    "Method",
    "Request",
    "Step",
    "TokenCap",
    "declares",
    "declaring",
    "is_reference",
    "item_seed",
    "knobs",
    "knobs_from",
    "reference_knobs",
]
