"""usc: universal self-consistency; the aggregator names the most consistent of k samples.

With `mixture` (e.g. "qqqsss") the samples come from several models: Mixed-USC (the paper's
AlpacaEval baseline). The answer is the named sample itself. A reply that names no valid sample
falls back to the
first sample of the first proposer and is counted (event `usc_parse_failed`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from harness.methods.aggregating import Aggregating, AggregatorKnobs
from harness.methods.base import Job, Request, Step
from harness.methods.mixture import OptionalMixture
from harness.methods.prompts import parse_usc_choice, usc_messages


@dataclass
class USCKnobs(AggregatorKnobs):
    k: int = 6
    aggregator_temperature: float = 0.0  # a selection, not a synthesis: greedy
    aggregator_max_tokens: int = 64  # the reply only names a response
    mixture: str | None = None  # Mixed-USC: samples of several models (replaces k)


class USC(OptionalMixture, Aggregating):
    name = "usc"
    Knobs = USCKnobs
    mode = "usc"

    def round_requests(self, job: Job) -> list[Request]:
        p = job.progress
        texts, order = self.ordered(job, p.responses, "usc")
        p.order = [p.index[i] for i in order]
        conversation = usc_messages(job.conversation, texts)
        return [self.request(job, job.conf.aggregator, conversation, self.final_sampling(job))]

    def round_advance(self, job: Job, texts: list[str]) -> Step:
        order = job.progress.order
        choice = parse_usc_choice(texts[0], len(order))
        events: tuple[str, ...] = ()
        if choice is None:
            events = ("usc_parse_failed",)
            picked = 0  # documented fallback: the first sample of the first proposer
        else:
            picked = order[choice - 1]
        final = replace(
            job.rounds[-1],
            text=job.proposals[picked].text,
            selection=texts[0],
            choice=None if choice is None else picked,
        )
        return Step(final=final, events=events)
