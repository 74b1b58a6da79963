"""majority_vote: k samples of one model; the answer is the most frequent extracted answer.

Ties go to the earliest sample; with no extractable answer at all, sample 0 is the answer.
No LLM call after the proposals.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from harness.methods.base import Job, Method, SampledKnobs, validate_k


@dataclass
class MajorityVoteKnobs(SampledKnobs):
    k: int = 6


class MajorityVote(Method):
    name = "majority_vote"
    Knobs = MajorityVoteKnobs
    needs_answer = True

    @classmethod
    def validate(cls, knobs, key, letters) -> None:
        super().validate(knobs, key, letters)
        validate_k(knobs, key)

    def samples(self) -> int:
        return self.knobs.k

    def final_text(self, job: Job, extract: Callable[[str], str | None]) -> str | None:
        if not job.proposals:
            return None
        pick = majority([extract(p.text) for p in job.proposals])
        return job.proposals[pick or 0].text


def majority(answers: list[str | None]) -> int | None:
    """Index of the first proposal whose answer is the most frequent non-empty answer."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    top = max(counts.values())
    return next(i for i, a in enumerate(answers) if a is not None and counts[a] == top)
