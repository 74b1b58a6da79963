"""rank_fuse: rank the proposals, keep the best, fuse those (LLM-Blender style, Jiang et al. 2023).

Round 1 ("rank"): the aggregator sees the k proposals, numbered in a seeded order (`shuffle`),
and ranks them listwise, best first, as `[2] > [5] > [1] > ...`. The reply is read as the
bracketed numbers in order (else "Response N" mentions, else a reply of bare numbers); repeats
and numbers out of range are ignored, and proposals it does not rank follow in shown order.
A reply with no valid number is a failed parse: event `rank_parse_failed`, and the fallback
keeps the first `keep` proposals in sample order (the ranking is ignored, never guessed).
Round 2 ("fuse"): the aggregator synthesises the kept proposals with the aggregator prompt,
exactly as Self-MoA does with all of them. Filtering raises the quality of what is fused at
the cost of diversity, which makes the method a probe of the quality-versus-diversity question.

Knobs: k (proposals), keep (how many to fuse; null = k // 2, at least 1), rank_max_tokens.
Calls per item: k proposals + 2. The record's `rounds` hold the ranking reply (mode "rank")
and the synthesis (mode "fuse"); `order` lists the kept proposals in the fuse prompt's order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from harness.config import check_tokens
from harness.errors import ConfigError
from harness.methods.aggregating import Aggregating, AggregatorKnobs
from harness.methods.base import Job, Progress, Request, Step, TokenCap
from harness.methods.prompts import numbered

RANK_INSTRUCTION = (
    "Rank the candidate responses above from best to worst by how correct, complete and "
    "helpful they are for the question. Do not answer the question yourself. Reply only with "
    "the ranking, every response number in brackets, best first, for example: [2] > [3] > [1]"
)
_BRACKETED = re.compile(r"\[(\d+)\]")
_NAMED = re.compile(r"(?:response|candidate)\s*#?\s*(\d+)", re.I)
_BARE = re.compile(r"[\d\s,>;.#]+")


@dataclass
class RankFuseKnobs(AggregatorKnobs):
    k: int = 6
    keep: int | None = None  # proposals fused; null = k // 2 (at least 1)
    rank_max_tokens: int = 128  # of the ranking reply


def parse_ranking(text: str, n: int) -> list[int]:
    """1-based response numbers in the order the reply ranks them (distinct, within 1..n)."""
    found = _BRACKETED.findall(text) or _NAMED.findall(text)
    if not found and _BARE.fullmatch(text.strip() or "x"):
        found = re.findall(r"\d+", text)
    ranking: list[int] = []
    for number in map(int, found):
        if 1 <= number <= n and number not in ranking:
            ranking.append(number)
    return ranking


def ranking_messages(conversation: list[dict], responses: list[str]) -> list[dict]:
    """The last user turn becomes the question, then the numbered responses and the request
    to rank them, all in one user turn (in a system message, Qwen2.5-Coder-0.5B ignored the
    request on 10 of 10 GSM8K items and answered the question instead)."""
    *history, last = conversation
    content = (
        f"Question:\n{last['content']}\n\nCandidate responses:\n\n{numbered(responses)}"
        f"\n\n{RANK_INSTRUCTION}"
    )
    return [*history, {"role": "user", "content": content}]


@dataclass
class RankProgress(Progress):
    shown: list[int] = field(default_factory=list)  # proposal indices in the ranking prompt


class RankFuse(Aggregating):
    name = "rank_fuse"
    Knobs = RankFuseKnobs
    Progress = RankProgress
    mode = "rank"

    @classmethod
    def validate(cls, knobs, key, letters) -> None:
        super().validate(knobs, key, letters)
        if knobs.keep is not None and not 1 <= knobs.keep <= knobs.k:
            raise ConfigError(f"{key}.keep must be in [1, k={knobs.k}] or null (got {knobs.keep})")
        check_tokens(knobs.rank_max_tokens, f"{key}.rank_max_tokens")

    def kept(self) -> int:
        return self.knobs.keep or max(1, self.knobs.k // 2)

    def planned_rounds(self) -> list[int]:
        return [self.knobs.rank_max_tokens, *super().planned_rounds()]

    def token_caps(self) -> list[TokenCap]:  # the ranking reply is round 1: stage "aggregate"
        ranking = TokenCap(
            "rank_max_tokens", self.knobs.rank_max_tokens, "aggregator", "aggregate",
            note=f"{self.name}'s ranking",
        )  # fmt: skip
        return [*super().token_caps(), ranking]

    def label_parts(self, agg: str | None) -> list[str]:
        parts = super().label_parts(agg)
        return [parts[0], f"keep={self.kept()}", *parts[1:]]

    def round_requests(self, job: Job) -> list[Request]:
        p = job.progress
        if p.mode != "rank":
            return super().round_requests(job)
        texts, order = self.ordered(job, p.responses, "rank")
        p.shown = [p.index[i] for i in order]
        sampling = self.final_sampling(job, max_tokens=self.knobs.rank_max_tokens)
        conversation = ranking_messages(job.conversation, texts)
        return [self.request(job, job.conf.aggregator, conversation, sampling)]

    def round_advance(self, job: Job, texts: list[str]) -> Step:
        p = job.progress
        if p.mode != "rank":
            return super().round_advance(job, texts)
        ranking = parse_ranking(texts[0], len(p.shown))
        events: tuple[str, ...] = ()
        if ranking:
            best = [p.shown[r - 1] for r in ranking]
            best += [i for i in p.shown if i not in best]  # unranked ones follow, in shown order
        else:
            events = ("rank_parse_failed",)
            best = sorted(p.shown)  # documented fallback: sample order
        keep = best[: self.kept()]
        position = {i: pos for pos, i in enumerate(p.index)}
        p.responses = [p.responses[position[i]] for i in keep]
        p.index = keep
        p.mode = "fuse"
        return self.proceed(job, events)
