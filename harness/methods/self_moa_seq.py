"""self_moa_seq: k samples aggregated in a sliding window (Self-MoA-Seq, Li et al. 2025).

The first round sees samples 0..window-1 (in sample order); each later round sees the current
synthesis repeated `reserved` times plus the next window - reserved samples, until all k are
used. The last synthesis is the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import ConfigError
from harness.methods.base import MAX_K, Aggregating, AggregatorKnobs


@dataclass
class SelfMoASeqKnobs(AggregatorKnobs):
    k: int = 9
    window: int = 6  # responses per aggregation round
    reserved: int = 3  # slots holding the repeated current synthesis


class SelfMoASeq(Aggregating):
    name = "self_moa_seq"
    Knobs = SelfMoASeqKnobs
    mode = "self_moa_seq"

    @classmethod
    def validate(cls, knobs, key, letters) -> None:
        super().validate(knobs, key, letters)
        if not 1 <= knobs.window <= MAX_K:
            raise ConfigError(f"{key}.window must be in [1, {MAX_K}] (got {knobs.window})")
        if not 0 <= knobs.reserved < knobs.window:
            raise ConfigError(
                f"{key}.reserved must be in [0, {key}.window - 1 = {knobs.window - 1}] "
                f"(got {knobs.reserved})"
            )

    def planned_rounds(self) -> list[int]:
        w, r = self.window()
        windows = 1 + max(0, -(-(self.samples() - w) // (w - r)))
        return super().planned_rounds() * windows

    def window(self) -> tuple[int, int]:
        return self.knobs.window, self.knobs.reserved
