"""usc: universal self-consistency; the aggregator names the most consistent of k samples.

The answer is the named sample itself. A reply that names no valid sample falls back to the
first sample of the first proposer and is counted (event `usc_parse_failed`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from harness.methods.base import Aggregating, AggregatorKnobs, Job, Request
from harness.prompts import parse_usc_choice, usc_messages


@dataclass
class USCKnobs(AggregatorKnobs):
    k: int = 6
    aggregator_temperature: float = 0.0  # a selection, not a synthesis: greedy
    aggregator_max_tokens: int = 64  # the reply only names a response


class USC(Aggregating):
    name = "usc"
    Knobs = USCKnobs
    mode = "usc"

    def round_requests(self, job: Job) -> list[Request]:
        texts, order = self.ordered(job, job.responses, "usc")
        job.order = [job.index[i] for i in order]
        conversation = usc_messages(job.conversation, texts)
        return [Request(job.conf.aggregator, conversation, self.final_sampling(job))]

    def round_advance(self, job: Job, texts: list[str]) -> None:
        choice = parse_usc_choice(texts[0], len(job.order))
        if choice is None:
            job.events.append("usc_parse_failed")
            picked = 0  # documented fallback: the first sample of the first proposer
        else:
            picked = job.order[choice - 1]
        job.final = replace(
            job.rounds[-1],
            text=job.proposals[picked].text,
            selection=texts[0],
            choice=None if choice is None else picked,
        )
        job.done = True
