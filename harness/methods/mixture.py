"""An optional proposer mixture for methods whose proposals are usually k samples of one model.

`mixture` (a letter multiset over the run's `letters`, as mixed_moa's) replaces `k`: the
proposals are the mixture's samples, each model's in its letters' order of first appearance.
Used by usc (Mixed-USC: USC over samples of several models) and self_moa_seq (Self-MoA-Seq
with a second model's samples: "qqqqqqsss" feeds six samples of q, then three of s, through
the sliding window, so the second model's samples enter the later rounds).
"""

from __future__ import annotations

from collections import Counter

from harness.errors import ConfigError
from harness.methods.base import MAX_K


def validate_mixture(knobs, key: str, letters: dict[str, str]) -> None:
    mixture = knobs.mixture
    if not mixture or len(mixture) > MAX_K:
        raise ConfigError(
            f"{key}.mixture must hold 1 to {MAX_K} letters (e.g. 'qqqsss'; got {mixture!r})"
        )
    unknown = sorted(set(mixture) - set(letters))
    if unknown:
        raise ConfigError(
            f"{key}.mixture={mixture!r}: letters {unknown} are not in letters; "
            f"known: {dict(letters)}"
        )
    if knobs.temperature == 0.0 and any(mixture.count(c) > 1 for c in set(mixture)):
        raise ConfigError(f"{key}.temperature=0 repeats a model's samples; use > 0")


class OptionalMixture:
    """Mixin: with `knobs.mixture` set, the proposals come from it instead of k samples."""

    @classmethod
    def validate(cls, knobs, key, letters) -> None:
        super().validate(knobs, key, letters)
        if knobs.mixture is not None:
            validate_mixture(knobs, key, letters)

    def samples(self) -> int:
        return len(self.knobs.mixture) if self.knobs.mixture else super().samples()

    def proposers(self, model: str, letters: dict[str, str]) -> tuple[tuple[str, int], ...]:
        if not self.knobs.mixture:
            return super().proposers(model, letters)
        return tuple(Counter(letters[c] for c in self.knobs.mixture).items())

    def label_parts(self, agg: str | None) -> list[str]:
        parts = super().label_parts(agg)
        return [p for p in parts if not p.startswith("k=")] if self.knobs.mixture else parts

    def proposer_spec(self, model: str, run_model: str, short: dict[str, str]) -> str:
        return self.knobs.mixture or super().proposer_spec(model, run_model, short)
