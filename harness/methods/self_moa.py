"""self_moa: k samples of one model, then aggregation by `aggregator` (Li et al. 2025).

`layers` counts the proposals as layer 1 and the final aggregation as the last layer: with
layers = 3, each proposal slot's model first writes a new response from all current responses
(an intermediate MoA layer, at the proposals' sampling), then the aggregator synthesises those.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.engines.base import Sampling
from harness.errors import ConfigError
from harness.methods.aggregating import Aggregating, AggregatorKnobs
from harness.methods.base import MAX_LAYERS, Job, Request, Step, item_seed
from harness.methods.prompts import aggregation_messages


@dataclass
class SelfMoAKnobs(AggregatorKnobs):
    k: int = 4
    layers: int = 2  # proposals + final aggregation; 3 adds a layer of agents


class SelfMoA(Aggregating):
    name = "self_moa"
    Knobs = SelfMoAKnobs
    mode = "layers"
    in_regression = True
    k_lines = True

    @classmethod
    def validate(cls, knobs, key, letters) -> None:
        super().validate(knobs, key, letters)
        if not 2 <= knobs.layers <= MAX_LAYERS:
            raise ConfigError(
                f"{key}.layers must be in [2, {MAX_LAYERS}] (proposals + aggregation; "
                f"got {knobs.layers})"
            )

    def label_parts(self, agg: str | None) -> list[str]:
        layers = [f"layers={self.knobs.layers}"] if self.knobs.layers != 2 else []
        return super().label_parts(agg) + layers

    def planned_rounds(self) -> list[int]:
        agents = self.samples() * (self.knobs.layers - 2)
        return [self.knobs.max_tokens] * agents + super().planned_rounds()

    def planned_round_count(self) -> int:
        return self.knobs.layers - 1  # each layer's agents are one round

    def round_requests(self, job: Job) -> list[Request]:
        p = job.progress
        if p.layer >= self.knobs.layers:
            return super().round_requests(job)
        k, requests = self.knobs, []
        for slot, proposal in enumerate(job.proposals):  # one agent per proposal slot
            texts, _ = self.ordered(job, p.responses, f"L{p.layer}/{slot}")
            seed = item_seed(job.seed, f"{job.item.id}/L{p.layer}/{slot}")
            sampling = Sampling(1, k.temperature, k.top_p, k.max_tokens, seed)
            conversation = aggregation_messages(job.conversation, texts, k.prompt)
            requests.append(self.request(job, proposal.model, conversation, sampling))
        return requests

    def round_advance(self, job: Job, texts: list[str]) -> Step:
        p = job.progress
        if p.layer >= self.knobs.layers:
            return super().round_advance(job, texts)
        p.responses, p.index = texts, list(range(len(job.proposals)))
        p.layer += 1
        return self.proceed(job)
