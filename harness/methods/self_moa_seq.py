"""self_moa_seq: k samples aggregated in a sliding window (Self-MoA-Seq, Li et al. 2025).

The first round sees samples 0..window-1 (in sample order); each later round sees the current
synthesis repeated `reserved` times plus the next window - reserved samples, until all k are
used. The last synthesis is the answer. With `mixture` the samples come from several models in
its letters' order ("qqqqqqsss": q's six, then a second model's three in the last round).

The algorithm (`Windows`) is also the `seq` context policy of every aggregating method: a job
whose aggregation prompt does not fit the aggregator's context goes on in windows of
SEQ_WINDOW responses, SEQ_RESERVED of them the repeated synthesis.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.engines.base import Output
from harness.errors import ConfigError
from harness.methods.aggregating import (
    CONTEXT_POLICIES,
    Aggregating,
    AggregatorKnobs,
    shorten,
)
from harness.methods.base import MAX_K, Job, Progress, Request, Step
from harness.methods.mixture import OptionalMixture

SEQ_WINDOW, SEQ_RESERVED = 6, 3  # the windows of the `seq` context policy
MODE = "self_moa_seq"  # the mode of window rounds (recorded, and part of their seeds)


@dataclass
class Windows:
    """Self-MoA-Seq's progress through a job's responses (held in the method's Progress)."""

    size: int  # responses per round
    reserved: int  # slots of the repeated synthesis
    synthesis: str | None = None
    next: int = 0  # the first response not yet seen

    def request(self, method: Aggregating, job: Job) -> Request:
        responses = job.progress.responses
        if self.synthesis is None:
            texts = responses[: self.size]
        else:
            more = responses[self.next : self.next + self.size - self.reserved]
            texts = [self.synthesis] * self.reserved + more
        return method.aggregate(job, texts)

    def advance(self, method: Aggregating, job: Job, text: str) -> Step:
        self.next += self.size if self.synthesis is None else self.size - self.reserved
        self.synthesis = text
        if self.next >= len(job.progress.responses):
            return Step(final=job.rounds[-1])
        return method.proceed(job)


def windows_needed(k: int, size: int, reserved: int) -> int:
    """Rounds to see k responses: one window, then size - reserved new ones per round."""
    return 1 + max(0, -(-(k - size) // (size - reserved)))


def seq_policy(method: Aggregating, job: Job, out: Output, pending: list[Request]) -> Step:
    """The `seq` context policy: Self-MoA-Seq windows from here on (shorten once they run)."""
    if job.progress.windows is not None:
        return shorten(method, job, out, pending)
    job.progress.mode, job.progress.windows = MODE, Windows(SEQ_WINDOW, SEQ_RESERVED)
    return method.proceed(job)


CONTEXT_POLICIES["seq"] = seq_policy


@dataclass
class SelfMoASeqKnobs(AggregatorKnobs):
    k: int = 9
    window: int = 6  # responses per aggregation round
    reserved: int = 3  # slots holding the repeated current synthesis
    # samples of several models in window order (replaces k): "qqqqqqsss" = six of q, then
    # three of a second model s (the paper's Self-MoA-Seq with another model's samples)
    mixture: str | None = None


class SelfMoASeq(OptionalMixture, Aggregating):
    name = "self_moa_seq"
    Knobs = SelfMoASeqKnobs
    mode = MODE
    k_lines = True

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
        windows = windows_needed(self.samples(), self.knobs.window, self.knobs.reserved)
        return super().planned_rounds() * windows

    def begin(self, job: Job) -> Progress:
        progress = super().begin(job)
        progress.windows = Windows(self.knobs.window, self.knobs.reserved)
        return progress
