"""The row schemas: a stored generation, and a run directory's record of one item.

`Generation` is one line of the store (harness.store). `Record` is one line of a run's
`records.jsonl`: one configuration on one item (or one turn of a multi-turn item), with every
proposal, every aggregation round, the final answer and how it was scored. Both are frozen;
`to_json`/`from_json` give and take the JSON objects written to disk, with the fields listed
below (records written before the redesign are the same minus the optional fields, which then
read as their defaults).

Record fields:
    configuration, method     the configuration's label and its method's name
    item_id, turn, question, reference
    proposals                 Proposal per sample: model, sample_index, text, tokens, finish
                              reason, extracted answer, score (and the judge's judgment)
    rounds                    Round per aggregation-stage generation (MoA layers, Seq windows,
                              rankings): model, mode, layer, text, tokens, finish reason
    aggregation               the round that gave the final answer (a selecting method: with
                              `selection`, the aggregator's reply, and `choice`, the sample it
                              picked)
    order                     proposal indices in the order the final prompt showed them
    events                    context-budget actions and parse failures, one string each
    final_text, answer, score, judgment, outcome ("ok", "no_answer", "prompt_too_long", ...)
    error                     why the item failed, when it did
    calls, prompt_tokens, generated_tokens, gen_s   what the item cost this configuration
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, fields
from typing import Any


def _take(cls, data: dict, **nested) -> Any:
    """`cls` from the JSON object `data`, ignoring unknown keys, converting `nested` fields."""
    names = {f.name for f in fields(cls)}
    kwargs = {k: v for k, v in data.items() if k in names}
    for key, convert in nested.items():
        if kwargs.get(key) is not None:
            kwargs[key] = convert(kwargs[key])
    return cls(**kwargs)


def _fields(obj) -> dict:
    """A flat dataclass's fields as a dict (dict values copied deeply, as `asdict` does)."""
    return {
        f.name: copy.deepcopy(v) if isinstance(v := getattr(obj, f.name), dict) else v
        for f in fields(obj)
    }


@dataclass(frozen=True)
class Generation:
    """One stored generation: sample `sample_index` of one request to one model."""

    key: str
    model: str  # the model identity (harness.engines.factory.model_identity)
    stage: str
    sample_index: int
    text: str
    tokens: int
    finish_reason: str | None
    prompt_tokens: int

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Generation:
        return _take(cls, data)


@dataclass(frozen=True)
class Proposal:
    model: str  # model config name
    sample_index: int
    text: str
    prompt_tokens: int
    generated_tokens: int
    finish_reason: str | None
    answer: str | None = None
    score: float | None = None
    judgment: dict | None = None


@dataclass(frozen=True)
class Round:
    model: str
    mode: str  # what the round did, in the words of the method that made it
    layer: int
    text: str
    prompt_tokens: int
    generated_tokens: int
    finish_reason: str | None
    selection: str | None = None  # a selecting round's reply, when `text` is the pick
    choice: int | None = None  # the proposal index picked (None: the parse failed)


@dataclass(frozen=True)
class Record:
    configuration: str
    method: str
    item_id: str
    turn: int
    question: str
    reference: str
    proposals: tuple[Proposal, ...]
    rounds: tuple[Round, ...]
    aggregation: Round | None
    order: tuple[int, ...]
    events: tuple[str, ...]
    final_text: str | None
    answer: str | None
    score: float | None
    judgment: dict | None
    outcome: str
    error: str | None
    calls: int
    prompt_tokens: int
    generated_tokens: int
    gen_s: float

    @property
    def generations(self) -> tuple[Proposal | Round, ...]:
        return self.proposals + self.rounds

    def to_json(self) -> dict:
        """The same dict as `dataclasses.asdict`, built without its generic deep copy (a
        paper-size study writes ~150,000 records of ~7 generations each)."""
        data = _fields(self)
        data["proposals"] = tuple(_fields(p) for p in self.proposals)
        data["rounds"] = tuple(_fields(r) for r in self.rounds)
        data["aggregation"] = None if self.aggregation is None else _fields(self.aggregation)
        return data

    @classmethod
    def from_json(cls, data: dict) -> Record:
        return _take(
            cls,
            data,
            proposals=lambda ps: tuple(_take(Proposal, p) for p in ps),
            rounds=lambda rs: tuple(_take(Round, r) for r in rs),
            aggregation=lambda r: _take(Round, r),
            order=tuple,
            events=tuple,
        )
