"""single: one answer of one model per item (greedy by default), the reference line."""

from __future__ import annotations

from harness.methods.base import Method


class Single(Method):
    name = "single"
    reference = True

    def label_parts(self, agg: str | None) -> list[str]:
        t = self.knobs.temperature
        return [f"T={t}"] if t > 0 else []
