"""Typed summaries of a study, and the names of their keys, defined once.

A stage's figures (`StageStats`), a configuration's summary (`ConfigSummary`) and a study's
metrics (`StudyMetrics`) are dataclasses; `metrics.json`, the W&B summary and results table and
the console tables are all written from them (harness.metrics computes them, harness.tables
prints them, harness.tracking mirrors them). The keys they are written under:
  `<benchmark>/<metric>` (acc, win_rate, score), with `_ci_low`, `_ci_high` and, on a
  multi-turn benchmark, `_turn<t>` after it; `<benchmark>/proposal_<metric>`,
  `<benchmark>/oracle_<metric>`;
  `cost/calls`, `cost/prompt_tokens`, `cost/generated_tokens`; `time/<x>_s`;
  `truncated/<proposals|aggregations|judgements>` (generations cut at their token cap);
  `store/found`, `store/made`, `store/skipped`; `memory/peak_rss_gib`;
  `template/system_folded` (requests whose system text went to the first user turn: the model's
  chat template takes no system message; harness.engines.templates).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

CALLS = "cost/calls"
PROMPT_TOKENS = "cost/prompt_tokens"
GENERATED_TOKENS = "cost/generated_tokens"
GENERATE_S = "time/generate_s"
PREPARE_S = "time/prepare_s"
LOAD_S = "time/load_s"
FOUND = "store/found"
MADE = "store/made"
SKIPPED = "store/skipped"
PEAK_RSS = "memory/peak_rss_gib"
NONDETERMINISTIC = "engine/nondeterministic_models"
SYSTEM_FOLDED = "template/system_folded"
TRUNCATED = "truncated/"  # + a field of Truncated
NOT_SCALAR = ("method", "outcomes", "events")  # left out of the W&B summary


@dataclass(frozen=True)
class MetricKeys:
    """The key names of one benchmark's headline metric, e.g. `gsm8k/acc`."""

    benchmark: str
    metric: str = "acc"

    @classmethod
    def parse(cls, key: str) -> MetricKeys:
        """From metrics.json's `metric` (`<benchmark>/<metric>`)."""
        benchmark, metric = key.split("/", 1)
        return cls(benchmark, metric)

    @property
    def score(self) -> str:
        return f"{self.benchmark}/{self.metric}"

    @property
    def ci_low(self) -> str:
        return f"{self.score}_ci_low"

    @property
    def ci_high(self) -> str:
        return f"{self.score}_ci_high"

    @property
    def proposal(self) -> str:
        return f"{self.benchmark}/proposal_{self.metric}"

    @property
    def oracle(self) -> str:
        return f"{self.benchmark}/oracle_{self.metric}"

    @property
    def turn_prefix(self) -> str:
        return f"{self.score}_turn"

    def turn(self, t: int) -> str:
        return f"{self.turn_prefix}{t}"


@dataclass
class StageStats:
    """One batched engine call of a study (a stage on one model), filled in as it runs."""

    stage: str
    model: str
    load_s: float = 0.0
    gen_s: float = 0.0
    requests: int = 0
    sequences: int = 0
    found: int = 0  # sequences served from the store
    made: int = 0  # sequences generated now
    prompt_tokens: int = 0  # of generated sequences: n samples of one prompt count n times
    generated_tokens: int = 0  # newly generated in this stage
    skipped: int = 0  # requests not sent (prompt exceeds the context)
    truncated: int = 0  # sequences (found or made) that stopped at max_tokens
    # requests that got no generation, by outcome (prompt_too_long, request_failed, ...)
    failed: dict[str, int] = field(default_factory=dict)
    folded: int = 0  # requests sent with their system text in the first user turn

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.gen_s if self.gen_s > 0 else 0.0

    def to_json(self) -> dict:
        return asdict(self) | {"tokens_per_s": self.tokens_per_s}


@dataclass(frozen=True)
class Truncated:
    """Generations that stopped at their token cap (finish reason `length`), per stage kind."""

    proposals: int = 0
    aggregations: int = 0
    judgements: int = 0

    def to_json(self) -> dict[str, int]:
        return {TRUNCATED + f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class ConfigSummary:
    """One configuration over a study's records (harness.metrics.summarize)."""

    method: str
    items: int  # records: items x turns
    scored: int  # records with a score (a judge reply that could not be read has none)
    score: float  # the mean score, `<benchmark>/<metric>`
    ci_low: float  # its 95% interval
    ci_high: float
    proposal_score: float  # the mean score of the proposals
    oracle_score: float  # the mean of the best proposal's score per item
    calls: int
    prompt_tokens: int
    generated_tokens: int
    generate_s: float
    truncated: Truncated
    outcomes: dict[str, int]  # per record outcome ("ok", "prompt_too_long", ...)
    events: dict[str, int]  # e.g. context policies that acted
    turn_scores: dict[int, float] = field(default_factory=dict)  # per turn, when more than one

    def to_json(self, keys: MetricKeys) -> dict:
        """As in metrics.json (`configurations.<label>`), keys in this order."""
        return {
            "method": self.method,
            "items": self.items,
            "scored": self.scored,
            keys.score: self.score,
            keys.ci_low: self.ci_low,
            keys.ci_high: self.ci_high,
            keys.proposal: self.proposal_score,
            keys.oracle: self.oracle_score,
            CALLS: self.calls,
            PROMPT_TOKENS: self.prompt_tokens,
            GENERATED_TOKENS: self.generated_tokens,
            GENERATE_S: self.generate_s,
            **self.truncated.to_json(),
            "outcomes": dict(self.outcomes),
            "events": dict(self.events),
            **{keys.turn(t): score for t, score in self.turn_scores.items()},
        }

    @classmethod
    def from_json(cls, data: dict, keys: MetricKeys) -> ConfigSummary:
        turn = keys.turn_prefix
        return cls(
            method=data["method"],
            items=data["items"],
            scored=data["scored"],
            score=data[keys.score],
            ci_low=data[keys.ci_low],
            ci_high=data[keys.ci_high],
            proposal_score=data[keys.proposal],
            oracle_score=data[keys.oracle],
            calls=data[CALLS],
            prompt_tokens=data[PROMPT_TOKENS],
            generated_tokens=data[GENERATED_TOKENS],
            generate_s=data[GENERATE_S],
            truncated=Truncated(**{f.name: data[TRUNCATED + f.name] for f in fields(Truncated)}),
            outcomes=data["outcomes"],
            events=data["events"],
            turn_scores={
                int(k.removeprefix(turn)): v for k, v in data.items() if k.startswith(turn)
            },
        )

    def scalars(self, keys: MetricKeys) -> dict:
        """Its figures in the W&B summary (every number of `to_json`)."""
        return {k: v for k, v in self.to_json(keys).items() if k not in NOT_SCALAR}


@dataclass(frozen=True)
class StoreSkipped:
    """Lines of the store that were not used: torn, invalid, conflicting keys."""

    torn: int
    invalid: int
    conflicts: int


@dataclass(frozen=True)
class StudyMetrics:
    """A study's metrics.json: every configuration's summary, every stage, the run's figures."""

    keys: MetricKeys
    items: int
    malformed_skipped: list[str]  # benchmark records skipped as malformed
    score_outcomes: dict[str, int]  # per graded answer (e.g. CRUXEval's sandbox statuses)
    configurations: dict[str, ConfigSummary]
    stages: list[StageStats]
    prepare_s: dict[str, float]  # per model: preparing its local copy
    store_skipped: StoreSkipped
    peak_rss_gib: float
    nondeterministic_models: list[str]

    @property
    def load_s(self) -> float:
        return sum(s.load_s for s in self.stages)

    @property
    def generate_s(self) -> float:
        return sum(s.gen_s for s in self.stages)

    @property
    def found(self) -> int:
        return sum(s.found for s in self.stages)

    @property
    def made(self) -> int:
        return sum(s.made for s in self.stages)

    @property
    def system_folded(self) -> int:
        return sum(s.folded for s in self.stages)

    def to_json(self) -> dict:
        return {
            "benchmark": self.keys.benchmark,
            "metric": self.keys.score,
            "items": self.items,
            "malformed_skipped": self.malformed_skipped,
            "score_outcomes": dict(self.score_outcomes),
            "configurations": {k: s.to_json(self.keys) for k, s in self.configurations.items()},
            "stages": [s.to_json() for s in self.stages],
            PREPARE_S: self.prepare_s,
            LOAD_S: self.load_s,
            GENERATE_S: self.generate_s,
            FOUND: self.found,
            MADE: self.made,
            SKIPPED: asdict(self.store_skipped),
            "truncated": {s.stage + "/" + s.model: s.truncated for s in self.stages},
            PEAK_RSS: self.peak_rss_gib,
            NONDETERMINISTIC: self.nondeterministic_models,
            SYSTEM_FOLDED: self.system_folded,
        }

    def scalars(self, main: str | None) -> dict:
        """The W&B summary. `main`: the configuration whose figures go under plain keys, the
        others' (the baselines) under `baseline/`; None (a study): every configuration's under
        `<label>/`. Then the run's own figures."""
        flat = {}
        for label, summary in self.configurations.items():
            prefix = f"{label}/" if main is None else ("" if label == main else "baseline/")
            flat |= {prefix + k: v for k, v in summary.scalars(self.keys).items()}
        return flat | {
            LOAD_S: self.load_s,
            GENERATE_S: self.generate_s,  # replaces the main configuration's (as it always has)
            FOUND: self.found,
            MADE: self.made,
            PEAK_RSS: self.peak_rss_gib,
            SYSTEM_FOLDED: self.system_folded,
        }


def read_summaries(metrics: dict) -> tuple[MetricKeys, dict[str, ConfigSummary]]:
    """The metric keys and configuration summaries of a metrics.json (a study's, not a
    propose-only phase's: that one has no `configurations`)."""
    keys = MetricKeys.parse(metrics["metric"])
    confs = metrics["configurations"]
    return keys, {label: ConfigSummary.from_json(s, keys) for label, s in confs.items()}
