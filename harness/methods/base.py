"""The method protocol: one class per ensemble method, its typed knobs, and what it answers.

A study asks every configuration every item. For each (configuration, item) the core makes a
`Job`, fills its proposals from the shared proposal pool (harness.generate), and then asks the
configuration's `Method`, which answers each time with a `Step` (the next round's requests, or
the end: the final round or an error):
    start(job)                  the proposals are in: the first round, or the end
    advance(job, texts)         the round's texts (one per request, in order): next round or end
    over_budget(job, out, ..)   a prompt of the round exceeded its model's context
    final_text(job, extract)    the configuration's answer once the job is over
The core batches the requests of all jobs per model into one engine call per round, records
each generation as a `Round` (its mode and layer as the `Request` names them), and applies
each Step to the job; it never reads the method's own progress (`job.progress`, the method's
`Progress`). A method's knobs are a dataclass (`Knobs` and subclasses): typed, with the
defaults; conf/method/<name>.yaml holds only what a preset changes. What the core plans from
(samples, proposers, aggregator, token caps, planned rounds, reference line, whether it needs
an extracted answer) is declared here too, so the core never asks for a method by name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from omegaconf import MISSING

from harness.config import check_tokens
from harness.engines.base import Conversation, Output, Sampling
from harness.errors import ConfigError
from harness.records import Proposal, Round

MAX_K = 256  # proposals per item; more is a typo, not a study
MAX_LAYERS = 8


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
    """One generation a round needs, and what the round is (recorded in its `Round`)."""

    model: str  # model config name
    conversation: Conversation
    sampling: Sampling
    mode: str = ""  # what the round does: "layers", "self_moa_seq", "usc", "rank", "fuse", ...
    layer: int = 2  # proposals are layer 1


@dataclass(frozen=True)
class Step:
    """A method's answer about a job: the next round's requests, or the end of the job (with
    its final round, or why it failed, or neither). The core applies it to the job."""

    requests: tuple[Request, ...] = ()
    final: Round | None = None
    error: str | None = None
    events: tuple[str, ...] = ()  # to record: context-budget actions, parse failures
    order: tuple[int, ...] | None = None  # proposal order in the final prompt, once known


@dataclass
class Progress:
    """A method's own progress on one job: written and read by the method alone."""

    mode: str = ""  # the method's current step, named in each Request
    layer: int = 2
    responses: list[str] = field(default_factory=list)  # what the next round aggregates
    index: list[int] = field(default_factory=list)  # responses[i] is proposals[index[i]]
    order: list[int] = field(default_factory=list)  # proposal order in the final prompt
    windows: Any = None  # Self-MoA-Seq windows once they run (harness.methods.self_moa_seq)


def item_seed(base_seed: int, item_id: str) -> int:
    """A per-item sampling seed; vLLM uses seed + j for sample j, so items are spaced apart."""
    digest = hashlib.sha256(f"{base_seed}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x3FFFFFFF


@dataclass(frozen=True)
class Configuration:
    """One method with its knobs, resolved against the run (by harness.plan): its structure
    (who proposes, how many samples each, who aggregates, whether it is the reference line)."""

    label: str  # unique within a run; derived from the knobs when unset (harness.plan)
    method: Method
    proposers: tuple[tuple[str, int], ...]  # (model name, samples) in prompt order
    aggregator: str | None  # model name; None for methods without an LLM aggregation

    @property
    def knobs(self):
        return self.method.knobs

    @property
    def reference(self) -> bool:
        """The reference line (the greedy baseline's method), marked as such in tables."""
        return self.method.reference

    @property
    def mixture(self) -> tuple[str, ...]:
        """The proposer multiset in prompt order: one model name per proposal."""
        return tuple(model for model, n in self.proposers for _ in range(n))

    @property
    def stream(self) -> tuple[float, float, int]:
        """(temperature, top_p, max_tokens) of its proposals: configurations sharing a model
        and these share its samples (the proposal pool's key, with the model and prompt)."""
        k = self.knobs
        return (k.temperature, k.top_p, k.max_tokens)


@dataclass
class Job:
    """One configuration on one item: what the core gave it and what came of it.

    The core writes every field from what the method answers (`Step`), except `progress`,
    which belongs to the method.
    """

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
    requests: list[Request] = field(default_factory=list)  # the next round's, while active
    progress: Any = None  # the method's own (its Progress)

    @property
    def method(self) -> Method:
        return self.conf.method

    def apply(self, step: Step) -> None:
        """Take the method's answer: the next round, or the end."""
        self.requests = list(step.requests)
        self.events += step.events
        if step.order is not None:
            self.order = list(step.order)
        self.final = step.final or self.final
        self.error = step.error or self.error


class Method:
    """Base of all methods. Subclasses set `name`, `Knobs`, and override what they change."""

    name: ClassVar[str]
    Knobs: ClassVar[type[Knobs]] = Knobs
    Progress: ClassVar[type[Progress]] = Progress
    aggregates: ClassVar[bool] = False  # has aggregation rounds after the proposals
    mode: ClassVar[str] = ""  # the first round's mode (also part of its seeds)
    reference: ClassVar[bool] = False  # the reference line (the plan's greedy baseline)
    needs_answer: ClassVar[bool] = False  # decides by extracted answers (no judged benchmark)
    # the analysis (harness.analyze): enters the q-d regression unless --methods says otherwise;
    # drawn as score against k per proposer model
    in_regression: ClassVar[bool] = False
    k_lines: ClassVar[bool] = False

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

    def planned_round_count(self) -> int:
        """Batched rounds after the proposals (the progress count of stages): one per
        generation of `planned_rounds` unless a round holds several (MoA's agent layers)."""
        return len(self.planned_rounds())

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
    def start(self, job: Job) -> Step:
        """The job's proposals are in (and it has not failed): its first round, or its end."""
        return Step()

    def advance(self, job: Job, texts: list[str]) -> Step:
        """The round's texts (one per request): the next round, or the end."""
        return Step()

    def over_budget(self, job: Job, out: Output, pending: list[Request]) -> Step:
        """A prompt of this round exceeded the context: only aggregating methods get here."""
        return Step(error=out.message)

    def final_text(self, job: Job, extract: Callable[[str], str | None]) -> str | None:
        """The configuration's answer: the final round's text (or, without rounds, a sample)."""
        if job.final is not None:
            return job.final.text
        if not job.proposals or self.aggregates:
            return None
        return job.proposals[0].text


def validate_k(knobs: SampledKnobs, key: str) -> None:
    if not 1 <= knobs.k <= MAX_K:
        raise ConfigError(f"{key}.k must be an integer in [1, {MAX_K}] (got {knobs.k})")
    if knobs.k > 1 and knobs.temperature == 0.0:
        raise ConfigError(
            f"{key}.temperature=0 with {key}.k={knobs.k}: greedy samples are identical; "
            "use a temperature > 0 (the paper uses 0.7)"
        )
