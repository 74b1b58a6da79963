"""Methods that end in aggregation rounds, and their context-budget policies.

`Aggregating` is the base of every method whose proposals an aggregator model reads (Self-MoA,
Mixed-MoA, Self-MoA-Seq, USC, rank_fuse): its knobs (`AggregatorKnobs`), the aggregator's
sampling, the aggregation request, and what happens when a round's prompt does not fit the
aggregator's context (`context_policy`, one of CONTEXT_POLICIES; never a silent truncation,
every action counted as an event):
    shorten       every response cut to the share of its length that fits, visibly marked
    drop_longest  the longest response left out
    fail          the item fails (prompt_too_long)
    seq           Self-MoA-Seq windows from here on (harness.methods.self_moa_seq adds it)
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from harness.config import check_tokens
from harness.engines.base import Output, Sampling
from harness.errors import ConfigError
from harness.methods.base import (
    Job,
    Knobs,
    Method,
    Progress,
    Request,
    Step,
    TokenCap,
    item_seed,
    validate_k,
)
from harness.methods.prompts import AGGREGATOR_PROMPTS, DEFAULT_PROMPT, aggregation_messages

MAX_CONTEXT_ACTIONS = 4  # then the item fails as prompt_too_long (the prompt alone is too long)
SHORTENED = " [...shortened]"


@dataclass
class AggregatorKnobs(Knobs):
    """Knobs of methods that aggregate; each such method adds its own `k` or proposer spec."""

    temperature: float = 0.7
    aggregator: str | None = None  # a conf/model/ name; null = the proposer model
    aggregator_temperature: float = 0.7  # MoA's code; the paper does not say
    aggregator_max_tokens: int = 512  # the paper: 2048 (the paper_* presets set it)
    prompt: str = DEFAULT_PROMPT  # aggregator prompt: a key of methods.prompts.AGGREGATOR_PROMPTS
    # false: proposals in sample order (MoA); true: a seeded permutation per item (position bias)
    shuffle: bool = False
    context_policy: str = "shorten"  # an aggregation prompt over the context: CONTEXT_POLICIES


class Aggregating(Method):
    """A method that ends in aggregation rounds by `aggregator` (null: the proposer model)."""

    Knobs = AggregatorKnobs
    aggregates = True

    @classmethod
    def validate(cls, knobs: AggregatorKnobs, key: str, letters: dict[str, str]) -> None:
        super().validate(knobs, key, letters)
        if hasattr(knobs, "k"):
            validate_k(knobs, key)
        if not 0.0 <= knobs.aggregator_temperature <= 5.0:
            raise ConfigError(
                f"{key}.aggregator_temperature must be in [0, 5.0] "
                f"(got {knobs.aggregator_temperature})"
            )
        check_tokens(knobs.aggregator_max_tokens, f"{key}.aggregator_max_tokens")
        if knobs.prompt not in AGGREGATOR_PROMPTS:
            raise ConfigError(
                f"{key}.prompt={knobs.prompt!r}; allowed: {', '.join(AGGREGATOR_PROMPTS)}"
            )
        if knobs.context_policy not in CONTEXT_POLICIES:
            raise ConfigError(
                f"{key}.context_policy={knobs.context_policy!r}; "
                f"allowed: {', '.join(CONTEXT_POLICIES)}"
            )

    def samples(self) -> int:
        return self.knobs.k

    def aggregator(self, model: str) -> str | None:
        return self.knobs.aggregator or model

    def planned_rounds(self) -> list[int]:
        return [self.knobs.aggregator_max_tokens]

    def token_caps(self) -> list[TokenCap]:
        cap = TokenCap("aggregator_max_tokens", self.knobs.aggregator_max_tokens, "aggregator",
                       "aggregate")  # fmt: skip
        return [*super().token_caps(), cap]

    def ordered(self, job: Job, texts: list[str], tag: str) -> tuple[list[str], list[int]]:
        """`texts` in a seeded per-item permutation (against position bias) when `shuffle`."""
        order = list(range(len(texts)))
        if self.knobs.shuffle:
            random.Random(f"{job.seed}:{job.item.id}:{tag}").shuffle(order)
        return [texts[i] for i in order], order

    def final_sampling(self, job: Job, max_tokens: int | None = None) -> Sampling:
        """The aggregator's sampling; the seed depends on the item, the mode and the round."""
        k = self.knobs
        return Sampling(
            n=1,
            temperature=k.aggregator_temperature,
            top_p=1.0,
            max_tokens=max_tokens or k.aggregator_max_tokens,
            seed=item_seed(job.seed + 1, f"{job.item.id}/{job.progress.mode}/{len(job.rounds)}"),
        )

    # -- rounds ---------------------------------------------------------------------------
    def start(self, job: Job) -> Step:
        job.progress = self.begin(job)
        return self.proceed(job)

    def begin(self, job: Job) -> Progress:
        """The method's progress on a job whose proposals are in."""
        texts = [p.text for p in job.proposals]
        return self.Progress(self.mode, responses=texts, index=list(range(len(texts))))

    def proceed(self, job: Job, events: tuple[str, ...] = ()) -> Step:
        """The next round: the method's own, or a Self-MoA-Seq window once windows run."""
        p = job.progress
        requests = [p.windows.request(self, job)] if p.windows else self.round_requests(job)
        return Step(tuple(requests), events=events, order=tuple(p.order))

    def advance(self, job: Job, texts: list[str]) -> Step:
        windows = job.progress.windows
        return windows.advance(self, job, texts[0]) if windows else self.round_advance(job, texts)

    def round_requests(self, job: Job) -> list[Request]:
        """The method's own rounds (the default: aggregate every response once)."""
        p = job.progress
        texts, order = self.ordered(job, p.responses, "final")
        p.order = [p.index[i] for i in order]
        return [self.aggregate(job, texts)]

    def round_advance(self, job: Job, texts: list[str]) -> Step:
        return Step(final=job.rounds[-1])

    def request(self, job: Job, model: str, conversation, sampling: Sampling) -> Request:
        """A request of the job's current round (its mode and layer)."""
        return Request(model, conversation, sampling, job.progress.mode, job.progress.layer)

    def aggregate(self, job: Job, texts: list[str]) -> Request:
        """The aggregator asked to synthesise `texts` (in the order given)."""
        conversation = aggregation_messages(job.conversation, texts, self.knobs.prompt)
        return self.request(job, job.conf.aggregator, conversation, self.final_sampling(job))

    def over_budget(self, job: Job, out: Output, pending: list[Request]) -> Step:
        """The context-budget policy: never truncate silently, count every case."""
        policy = self.knobs.context_policy
        event = (f"context_{policy}",)
        if len(job.events) + 1 > MAX_CONTEXT_ACTIONS:  # the prompt alone is too long
            return Step(error=out.message, events=event)
        step = CONTEXT_POLICIES[policy](self, job, out, pending)
        return replace(step, events=event + step.events)


def shortened(texts: list[str], factor: float) -> list[str]:
    """Every text cut to `factor` of its length, visibly marked (never a silent truncation)."""
    return [t[: max(1, int(len(t) * factor))] + SHORTENED for t in texts]


def shorten(method: Aggregating, job: Job, out: Output, pending: list[Request]) -> Step:
    p = job.progress
    room = out.context_limit - method.knobs.aggregator_max_tokens  # room for the answer
    # chars to cut, assuming tokens are spread evenly over the prompt's characters
    sent = sum(len(m["content"]) for m in pending[0].conversation)
    cut = sent * (1 - room / out.prompt_tokens) * 1.1 + len(SHORTENED) * len(p.responses)
    total = sum(len(t) for t in p.responses)
    factor = max(0.05, min(0.95, (total - cut) / total)) if total else 0.05
    p.responses = shortened(p.responses, factor)
    if p.windows and p.windows.synthesis is not None:
        p.windows.synthesis = shortened([p.windows.synthesis], factor)[0]
    return method.proceed(job)


def drop_longest(method: Aggregating, job: Job, out: Output, pending: list[Request]) -> Step:
    p = job.progress
    if len(p.responses) == 1:
        return Step(error=out.message)
    longest = max(range(len(p.responses)), key=lambda i: len(p.responses[i]))
    del p.responses[longest], p.index[longest]
    return method.proceed(job)


def fail(method: Aggregating, job: Job, out: Output, pending: list[Request]) -> Step:
    return Step(error=out.message)


# name -> policy; harness.methods.self_moa_seq adds "seq"
Policy = Callable[[Aggregating, Job, Output, list[Request]], Step]
CONTEXT_POLICIES: dict[str, Policy] = {
    "shorten": shorten,
    "drop_longest": drop_longest,
    "fail": fail,
}
