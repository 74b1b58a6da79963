"""The method protocol: one class per ensemble method, its typed knobs, and the state of a job.

A study asks every configuration every item. For each (configuration, item) the core makes a
`Job`, fills its proposals from the shared proposal pool (harness.generate), and then, round by
round, asks the configuration's `Method`:
    requests(job)        what the round needs generated: [Request(model, conversation, sampling)]
    advance(job, texts)  the round's texts (one per request, in order): move on, or finish
                         (set `job.final` and `job.done`)
    final_text(job, ..)  the configuration's answer once the job is done
The core batches the requests of all jobs per model into one engine call per round, records
each generation as a `Round`, and applies the context policy (`over_budget`) when a prompt does
not fit the aggregator's context. A method's knobs are a dataclass (`Knobs` and subclasses):
typed, with the defaults; conf/method/<name>.yaml holds only what a preset changes.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from omegaconf import MISSING

from harness.config import check_tokens
from harness.engines.base import Conversation, Output, Sampling
from harness.errors import ConfigError
from harness.prompts import AGGREGATOR_PROMPTS, DEFAULT_PROMPT, aggregation_messages
from harness.records import Proposal, Round

if TYPE_CHECKING:
    from harness.plan import Configuration

CONTEXT_POLICIES = ("shorten", "drop_longest", "fail", "seq")
MAX_K = 256  # proposals per item; more is a typo, not a study
MAX_LAYERS = 8
MAX_CONTEXT_ACTIONS = 4  # then the item fails as prompt_too_long (the prompt alone is too long)
SHORTENED = " [...shortened]"
SEQ_WINDOW, SEQ_RESERVED = 6, 3  # Self-MoA-Seq windows of the `seq` context policy


@dataclass
class Knobs:
    """Knobs every method has: which model proposes and how it samples."""

    name: str = MISSING
    label: str | None = None  # name in tables and W&B; derived from the knobs when null
    model: str | None = None  # proposer model (a conf/model/ name); null = the run's `model`
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512  # per proposal; the paper: 2048 (the paper_* presets set it)


@dataclass
class SampledKnobs(Knobs):
    k: int = 4  # proposals per item
    temperature: float = 0.7


@dataclass
class AggregatorKnobs(Knobs):
    """Knobs of methods that aggregate; each such method adds its own `k` or proposer spec."""

    temperature: float = 0.7
    aggregator: str | None = None  # a conf/model/ name; null = the proposer model
    aggregator_temperature: float = 0.7  # MoA's code; the paper does not say
    aggregator_max_tokens: int = 512  # the paper: 2048 (the paper_* presets set it)
    prompt: str = DEFAULT_PROMPT  # aggregator prompt: a key of harness.prompts.AGGREGATOR_PROMPTS
    # false: proposals in sample order (MoA); true: a seeded permutation per item (position bias)
    shuffle: bool = False
    context_policy: str = "shorten"  # an aggregation prompt over the context: CONTEXT_POLICIES


@dataclass(frozen=True)
class TokenCap:
    """A method's cap on the tokens of one kind of generation, declared by the method.

    The plan checks that `tokens` leaves room for a prompt in the context of the model it
    caps; a truncation warning of `stage` names a cap with a `note` beside the stage's usual one.
    """

    knob: str  # the knob holding it, e.g. "aggregator_max_tokens"
    tokens: int
    model: str  # whose generations it caps: "proposer" (every proposer model) or "aggregator"
    stage: str  # the stage it caps: its kind ("propose", "aggregate") or an exact stage name
    note: str = ""  # names a cap beside the stage's usual one, e.g. "rank_fuse's ranking"


@dataclass(frozen=True)
class Request:
    model: str  # model config name
    conversation: Conversation
    sampling: Sampling


def item_seed(base_seed: int, item_id: str) -> int:
    """A per-item sampling seed; vLLM uses seed + j for sample j, so items are spaced apart."""
    digest = hashlib.sha256(f"{base_seed}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x3FFFFFFF


@dataclass
class Job:
    """One configuration on one item, from its proposals to its final answer."""

    conf: Configuration
    item: Any  # harness.benchmarks.Item
    conversation: Conversation
    seed: int
    error: str | None = None  # why the job failed (before or during its rounds)
    proposals: list[Proposal] = field(default_factory=list)
    proposal_s: list[float] = field(default_factory=list)  # generation seconds per proposal
    rounds: list[Round] = field(default_factory=list)  # every aggregation-stage generation
    round_s: list[float] = field(default_factory=list)
    events: list[str] = field(default_factory=list)  # context-budget actions, parse failures
    order: list[int] = field(default_factory=list)  # proposal order in the final prompt
    final: Round | None = None
    done: bool = False
    mode: str = ""  # the method's current step, recorded in each Round
    layer: int = 2  # proposals are layer 1
    responses: list[str] = field(default_factory=list)  # what the next round aggregates
    index: list[int] = field(default_factory=list)  # responses[i] is proposals[index[i]]
    state: dict[str, Any] = field(default_factory=dict)  # a method's own progress

    @property
    def method(self) -> Method:
        return self.conf.method


class Method:
    """Base of all methods. Subclasses set `name`, `Knobs`, and override what they change."""

    name: ClassVar[str]
    Knobs: ClassVar[type[Knobs]] = Knobs
    aggregates: ClassVar[bool] = False  # has aggregation rounds after the proposals
    mode: ClassVar[str] = ""  # the first round's mode (also part of its seeds)
    reference: ClassVar[bool] = False  # the reference line (the plan's greedy baseline)
    needs_answer: ClassVar[bool] = False  # decides by extracted answers (no judged benchmark)

    def __init__(self, knobs: Knobs):
        self.knobs = knobs

    # -- planning ---------------------------------------------------------------------------
    @classmethod
    def validate(cls, knobs: Knobs, key: str, letters: dict[str, str]) -> None:
        """Raise ConfigError naming `key.<knob>` for an impossible value."""
        if not 0.0 <= knobs.temperature <= 5.0:
            raise ConfigError(f"{key}.temperature must be in [0, 5.0] (got {knobs.temperature})")
        if not 0.0 < knobs.top_p <= 1.0:
            raise ConfigError(f"{key}.top_p must be in (0, 1] (got {knobs.top_p})")
        check_tokens(knobs.max_tokens, f"{key}.max_tokens")

    def samples(self) -> int:
        """Proposals per item of the proposer model."""
        return 1

    def proposers(self, model: str, letters: dict[str, str]) -> tuple[tuple[str, int], ...]:
        """(model name, samples) per proposer model, in prompt order."""
        return ((model, self.samples()),)

    def aggregator(self, model: str) -> str | None:
        return None

    def planned_rounds(self) -> list[int]:
        """The token cap of each generation after the proposals, per item (for planning)."""
        return []

    def token_caps(self) -> list[TokenCap]:
        """Every token cap of the method's generations (context checks, truncation warnings)."""
        return [TokenCap("max_tokens", self.knobs.max_tokens, "proposer", "propose")]

    def proposer_spec(self, model: str, run_model: str, short: dict[str, str]) -> str:
        """Who proposes, as the derived label shows it: nothing for the run's model, else the
        model's letter (`short`: model name -> letter) or name."""
        return "" if model == run_model else short.get(model, model)

    def label_parts(self, agg: str | None) -> list[str]:
        """The knobs shown in the derived label, after the proposer spec."""
        return [f"k={self.samples()}"] + ([f"agg={agg}"] if agg else [])

    # -- running ----------------------------------------------------------------------------
    def start(self, job: Job) -> None:
        """Set up a job whose proposals are in."""
        job.mode = self.mode
        job.responses = [p.text for p in job.proposals]
        job.index = list(range(len(job.proposals)))
        if job.error or not self.aggregates:
            job.done = True

    def requests(self, job: Job) -> list[Request]:
        """What the next round needs generated (only called while the job is not done)."""
        return []

    def advance(self, job: Job, texts: list[str]) -> None:
        """Take the round's texts (one per request): move on, or set `final` and `done`."""
        job.done = True

    def final_text(self, job: Job, extract: Callable[[str], str | None]) -> str | None:
        """The configuration's answer: the final round's text (or, without rounds, a sample)."""
        if job.final is not None:
            return job.final.text
        if not job.proposals or self.aggregates:
            return None
        return job.proposals[0].text

    def over_budget(self, job: Job, out: Output, pending: list[Request]) -> None:
        """A prompt of this round exceeded the context: only aggregating methods get here."""
        job.error, job.done = out.message, True


def shortened(texts: list[str], factor: float) -> list[str]:
    """Every text cut to `factor` of its length, visibly marked (never a silent truncation)."""
    return [t[: max(1, int(len(t) * factor))] + SHORTENED for t in texts]


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
            seed=item_seed(job.seed + 1, f"{job.item.id}/{job.mode}/{len(job.rounds)}"),
        )

    # -- rounds ---------------------------------------------------------------------------
    def requests(self, job: Job) -> list[Request]:
        if job.mode == "self_moa_seq":
            return [self.window_request(job)]
        return self.round_requests(job)

    def advance(self, job: Job, texts: list[str]) -> None:
        if job.mode == "self_moa_seq":
            self.window_advance(job, texts[0])
        else:
            self.round_advance(job, texts)

    def round_requests(self, job: Job) -> list[Request]:
        """The method's own rounds (the default: aggregate every response once)."""
        texts, order = self.ordered(job, job.responses, "final")
        job.order = [job.index[i] for i in order]
        return [self.aggregate(job, texts)]

    def round_advance(self, job: Job, texts: list[str]) -> None:
        job.final, job.done = job.rounds[-1], True

    def aggregate(self, job: Job, texts: list[str]) -> Request:
        """The aggregator asked to synthesise `texts` (in the order given)."""
        conversation = aggregation_messages(job.conversation, texts, self.knobs.prompt)
        return Request(job.conf.aggregator, conversation, self.final_sampling(job))

    # -- Self-MoA-Seq windows (the method itself, and the `seq` context policy) ----------------
    def window(self) -> tuple[int, int]:
        """(responses per round, slots of the repeated synthesis) of Self-MoA-Seq rounds."""
        return SEQ_WINDOW, SEQ_RESERVED

    def window_request(self, job: Job) -> Request:
        w, r = self.window()
        synthesis, start = job.state.get("synthesis"), job.state.get("next", 0)
        if synthesis is None:
            texts = job.responses[:w]
        else:
            texts = [synthesis] * r + job.responses[start : start + w - r]
        return self.aggregate(job, texts)

    def window_advance(self, job: Job, text: str) -> None:
        w, r = self.window()
        used = w if job.state.get("synthesis") is None else w - r
        job.state["next"] = job.state.get("next", 0) + used
        job.state["synthesis"] = text
        if job.state["next"] >= len(job.responses):
            job.final, job.done = job.rounds[-1], True

    def over_budget(self, job: Job, out: Output, pending: list[Request]) -> None:
        """The context-budget policy: never truncate silently, count every case."""
        policy = self.knobs.context_policy
        job.events.append(f"context_{policy}")
        hopeless = len(job.events) > MAX_CONTEXT_ACTIONS or (
            policy == "drop_longest" and len(job.responses) == 1
        )
        if policy == "fail" or hopeless:
            job.error, job.done = out.message, True
        elif policy == "drop_longest":
            longest = max(range(len(job.responses)), key=lambda i: len(job.responses[i]))
            del job.responses[longest], job.index[longest]
        elif policy == "seq" and job.mode != "self_moa_seq":  # Self-MoA-Seq from here on
            job.mode, job.state["synthesis"], job.state["next"] = "self_moa_seq", None, 0
        else:  # shorten (also when a Self-MoA-Seq window itself does not fit)
            room = out.context_limit - self.knobs.aggregator_max_tokens  # room for the answer
            # chars to cut, assuming tokens are spread evenly over the prompt's characters
            sent = sum(len(m["content"]) for m in pending[0].conversation)
            cut = sent * (1 - room / out.prompt_tokens) * 1.1 + len(SHORTENED) * len(job.responses)
            total = sum(len(t) for t in job.responses)
            factor = max(0.05, min(0.95, (total - cut) / total)) if total else 0.05
            job.responses = shortened(job.responses, factor)
            if job.state.get("synthesis") is not None:
                job.state["synthesis"] = shortened([job.state["synthesis"]], factor)[0]


def validate_k(knobs: SampledKnobs, key: str) -> None:
    if not 1 <= knobs.k <= MAX_K:
        raise ConfigError(f"{key}.k must be an integer in [1, {MAX_K}] (got {knobs.k})")
    if knobs.k > 1 and knobs.temperature == 0.0:
        raise ConfigError(
            f"{key}.temperature=0 with {key}.k={knobs.k}: greedy samples are identical; "
            "use a temperature > 0 (the paper uses 0.7)"
        )
