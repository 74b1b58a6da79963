"""The redesigned core serves a study stored by the core before it entirely from the store.

tests/data/golden holds a store and the records written by the pre-redesign core (commit
b885efa, fake engine, tests/data/golden/make_golden.py): every method, MoA layers, the three
context policies that act, a judged two-turn benchmark. Here the same study runs through the
current core with an engine that fails if it is ever loaded: every generation must come from
the store (made 0; only a prompt over the context is asked again, as such outcomes are not
stored), and every record must hold the same values (new optional fields aside).
"""

import json
import shutil
from pathlib import Path

import pytest

from harness import benchmarks, methods
from harness.benchmarks import get
from harness.config import EngineConfig, ModelConfig, RunConfig
from harness.generate import Generator, ModelSlot
from harness.plan import configurations
from harness.store import Store
from harness.study import execute
from tests.conftest import FakeEngine

GOLDEN = Path(__file__).parent / "data" / "golden"
MODELS = {n: ModelConfig(name=n, path=f"org/{n}", revision="r1") for n in ("small", "big", "judge")}
# the pre-redesign defaults of knobs the golden rows left out
OLD = {"aggregator_temperature": 0.0, "aggregator_max_tokens": 512, "prompt": "critical"}


def K(name, **values):  # noqa: N802 - reads like the rows it builds
    """Knobs with the pre-redesign defaults of what `values` leaves out (shuffled proposals)."""
    if name not in ("majority_vote", "single"):
        values = {**OLD, "shuffle": True, **values}
    return methods.knobs(name, **values)


STUDIES = {
    "gsm8k": [
        K("majority_vote", k=3),
        K("self_moa", k=3),
        K("self_moa", k=4, shuffle=False, aggregator="big", label="self_moa_big_shorten"),
        K(
            "self_moa",
            k=4,
            aggregator="big",
            context_policy="drop_longest",
            label="self_moa_big_drop",
        ),
        K("self_moa", k=6, aggregator="big", context_policy="seq", label="self_moa_big_seq"),
        K("self_moa", k=3, layers=3),
        K("mixed_moa", mixture="ssb"),
        K(
            "mixed_moa",
            mixture="sbb",
            layers=3,
            aggregator="big",
            aggregator_temperature=0.5,
            aggregator_max_tokens=512,
        ),  # fmt: skip
        K("self_moa_seq", k=5, window=3, reserved=1),
        K("usc", k=3, aggregator_temperature=0.0, aggregator_max_tokens=64),
        K("single", temperature=0.7, model="big"),
    ],
    "mt_bench": [K("self_moa", k=2), K("usc", k=2)],
}


def engine(model):
    """Only the short-context aggregator is loaded: to learn that a prompt is too long (such
    outcomes are not generations, so the store does not hold them). It must make nothing."""
    if model.name != "big":
        raise AssertionError(f"{model.name} was loaded: a generation was not served from the store")
    return FakeEngine(model.name, [], max_prompt_chars=950)


def subset_equal(old, new, path="record"):
    """Every field of `old` is in `new` with the same value (floats to 1e-9)."""
    if isinstance(old, dict):
        assert isinstance(new, dict), path
        for key, value in old.items():
            assert key in new, f"{path}.{key} missing"
            subset_equal(value, new[key], f"{path}.{key}")
    elif isinstance(old, list):
        assert isinstance(new, list) and len(old) == len(new), path
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            subset_equal(a, b, f"{path}[{i}]")
    elif isinstance(old, float):
        assert new == pytest.approx(old, abs=1e-9), path
    else:
        assert old == new, f"{path}: {old!r} != {new!r}"


@pytest.mark.parametrize("bench_name", sorted(STUDIES))
def test_study_stored_before_the_redesign_is_served_whole(bench_name, tmp_path):
    shutil.copytree(GOLDEN / "store", tmp_path / "store")
    run = RunConfig(
        model=MODELS["small"],
        configurations=STUDIES[bench_name],
        letters={"s": "small", "b": "big"},
    )
    judge = "judge" if bench_name == "mt_bench" else None
    own = {"judge": judge} if judge else {}  # a knob of judged benchmarks only
    bench = get(benchmarks.knobs(bench_name, data_dir=str(GOLDEN / "data"), **own))
    slot = ModelSlot(MODELS, EngineConfig(name="test"), factory=engine)
    gen = Generator(slot, Store(tmp_path / "store"), seed=0)
    records = execute(configurations(run), bench.load(), bench, gen, judge)
    assert sum(s.made for s in gen.stages) == 0 and sum(s.found for s in gen.stages) > 0
    golden = [json.loads(line) for line in (GOLDEN / f"records_{bench_name}.jsonl").open()]
    new = [json.loads(json.dumps(r.to_json())) for r in records]
    assert len(new) == len(golden)
    for old, now in zip(golden, new, strict=True):
        old.pop("gen_s"), now.pop("gen_s")  # seconds spent then; 0 now (served)
        subset_equal(old, now, f"{old['configuration']}/{old['item_id']}")
