"""Adding a method with its own token cap touches its module and one registry line, no core file.

The method below ("critique then fuse": the aggregator first critiques the proposals under
its own cap, `critique_max_tokens`, then synthesises them) is written here as a researcher
would write harness/methods/<name>.py; the only other site is its line in
harness.methods.REGISTRY (and, for `method=<name>` on the command line, its conf/method yaml).
The core then plans it, checks its cap against the aggregator's context, runs its rounds,
records them and names its cap in truncation warnings, by asking the method.
"""

from dataclasses import dataclass

import pytest

from harness import methods
from harness.benchmarks import get
from harness.config import ConfigError, ModelConfig, RunConfig
from harness.methods.aggregating import Aggregating, AggregatorKnobs
from harness.methods.base import Job, Request, TokenCap
from harness.metrics import truncation_warnings
from harness.plan import checked_run, configurations, planned_generations
from harness.store import Store
from harness.summary import StageStats
from tests.conftest import FakeEngine, compose_config, fake_slot, run_execute

NAME = "critique_fuse"
CRITIQUE = "Point out the mistakes of the responses above; do not answer."


# ---- the method module: harness/methods/critique_fuse.py ---------------------------------------
@dataclass
class CritiqueFuseKnobs(AggregatorKnobs):
    k: int = 3
    critique_max_tokens: int = 64  # of the critique reply


class CritiqueFuse(Aggregating):
    name = NAME
    Knobs = CritiqueFuseKnobs
    mode = "critique"

    def planned_rounds(self) -> list[int]:
        return [self.knobs.critique_max_tokens, *super().planned_rounds()]

    def token_caps(self) -> list[TokenCap]:
        own = TokenCap(
            "critique_max_tokens", self.knobs.critique_max_tokens, "aggregator", "aggregate",
            note=f"{self.name}'s critique",
        )  # fmt: skip
        return [*super().token_caps(), own]

    def round_requests(self, job: Job) -> list[Request]:
        if job.progress.mode != "critique":
            return super().round_requests(job)
        numbered = "\n\n".join(job.progress.responses)
        conversation = [{"role": "user", "content": f"{numbered}\n\n{CRITIQUE}"}]
        sampling = self.final_sampling(job, max_tokens=self.knobs.critique_max_tokens)
        return [self.request(job, job.conf.aggregator, conversation, sampling)]

    def round_advance(self, job, texts):
        if job.progress.mode != "critique":
            return super().round_advance(job, texts)
        job.progress.mode = "fuse"
        return self.proceed(job)


# ---- its registry line: REGISTRY in harness/methods/__init__.py --------------------------------
@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(methods.REGISTRY, NAME, CritiqueFuse)


MODELS = {"small": ModelConfig(name="small", path="org/small", revision="r1")}


def test_its_cap_is_checked_against_the_aggregators_context(registered):
    row = f"configurations=[{{name: {NAME}, critique_max_tokens: 5000}}]"
    with pytest.raises(ConfigError, match=r"configurations\[0\].critique_max_tokens=5000 leaves"):
        checked_run(compose_config("model=smollm2-135m-instruct", row))  # max_model_len 4096
    run = checked_run(compose_config("model=smollm2-135m-instruct", row.replace("5000", "500")))
    assert run.configurations[0].critique_max_tokens == 500


def test_it_is_planned_run_and_recorded_by_asking_it(registered, bench_cfg, tmp_path):
    method = methods.knobs(NAME, k=2, critique_max_tokens=48)
    run = RunConfig(model=MODELS["small"], method=method, baseline=False)
    (conf,) = configurations(run)
    assert conf.label == f"{NAME}(k=2)" and conf.aggregator == "small"
    planned = planned_generations([conf], items=1)
    assert planned == {"proposals": 2, "aggregations": 2, "tokens": 2 * 512 + 48 + 512}
    bench = get(bench_cfg)
    calls = []
    slot = fake_slot(MODELS, lambda m: FakeEngine(m.name, calls))
    records, stages = run_execute([conf], bench.load(), bench, slot, Store(tmp_path / "s"))
    assert [s.stage for s in stages] == ["propose", "aggregate", "aggregate-2"]
    r = records[0]
    assert [g["mode"] for g in r["rounds"]] == ["critique", "fuse"] and r["outcome"] == "ok"
    assert calls[1][2][0].max_tokens == 48  # the critique round ran under its own cap


def test_truncation_warnings_name_its_cap(registered):
    caps = methods.make(methods.knobs(NAME), "method", {}).token_caps()
    stages = [StageStats("aggregate", "m", sequences=10, truncated=9)]
    (line,) = truncation_warnings(stages, caps)
    assert line.endswith(
        f"raise method.aggregator_max_tokens ({NAME}'s critique: method.critique_max_tokens)"
    )
