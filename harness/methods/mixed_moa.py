"""mixed_moa: samples of several models, then aggregation (Mixture-of-Agents, Wang et al. 2024).

`mixture` is a letter multiset over the run's `letters` (e.g. "qqqsss": three samples of the q
model, three of the s model, in that order); `layers` as in self_moa.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from harness.errors import ConfigError
from harness.methods.aggregating import AggregatorKnobs
from harness.methods.base import MAX_K
from harness.methods.self_moa import SelfMoA


@dataclass
class MixedMoAKnobs(AggregatorKnobs):
    mixture: str = "qqqsss"
    layers: int = 2


class MixedMoA(SelfMoA):
    name = "mixed_moa"
    Knobs = MixedMoAKnobs
    k_lines = False  # several proposer models: no line per model

    @classmethod
    def validate(cls, knobs, key, letters) -> None:
        super().validate(knobs, key, letters)
        if not knobs.mixture or len(knobs.mixture) > MAX_K:
            raise ConfigError(
                f"{key}.mixture must hold 1 to {MAX_K} letters "
                f"(e.g. 'qqqsss'; got {len(knobs.mixture)} letters)"
            )
        unknown = sorted(set(knobs.mixture) - set(letters))
        if unknown:
            raise ConfigError(
                f"{key}.mixture={knobs.mixture!r}: letters {unknown} are not in "
                f"letters; known: {dict(letters)}"
            )
        repeats = any(knobs.mixture.count(c) > 1 for c in set(knobs.mixture))
        if knobs.temperature == 0.0 and repeats:
            raise ConfigError(f"{key}.temperature=0 repeats a model's samples; use > 0")

    def samples(self) -> int:
        return len(self.knobs.mixture)

    def proposers(self, model: str, letters: dict[str, str]) -> tuple[tuple[str, int], ...]:
        return tuple(Counter(letters[c] for c in self.knobs.mixture).items())

    def proposer_spec(self, model: str, run_model: str, short: dict[str, str]) -> str:
        return self.knobs.mixture

    def label_parts(self, agg: str | None) -> list[str]:
        return [p for p in super().label_parts(agg) if not p.startswith("k=")]
