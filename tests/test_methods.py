"""Stage planning, batching, records and accounting of `single` and `self_moa`, on a fake engine."""

from dataclasses import replace

import pytest

from harness.benchmarks import get
from harness.config import ModelConfig, RunConfig
from harness.methods import knobs, make
from harness.methods.prompts import MOA_INSTRUCTION
from harness.metrics import summarize, wilson
from harness.plan import configurations, item_seed
from harness.store import Store
from tests.conftest import FakeEngine, fake_slot, run_execute, typed

MODELS = {n: ModelConfig(name=n, path=f"org/{n}", revision="r1") for n in ("small", "big")}


def make_run(method, baseline=True) -> RunConfig:
    return RunConfig(model=MODELS["small"], method=method, baseline=baseline)


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "store")


@pytest.fixture
def setup(bench_cfg, store):
    bench = get(bench_cfg)
    calls, engines = [], []

    def factory(model):
        engines.append(FakeEngine(model.name, calls))
        return engines[-1]

    return bench, bench.load(), calls, engines, fake_slot(MODELS, factory), store


def test_default_run_has_greedy_baseline_then_method():
    confs = configurations(make_run(knobs("self_moa", k=4, temperature=0.7)))
    assert [c.label for c in confs] == ["single", "self_moa(k=4)"]
    assert confs[0].knobs.temperature == 0.0 and confs[1].aggregator == "small"


def test_single_alone_has_no_duplicate_baseline():
    assert [c.label for c in configurations(make_run(knobs("single")))] == ["single"]


def test_self_moa_makes_one_batched_call_per_stage_and_reuses_the_model(setup):
    bench, items, calls, engines, slot, store = setup
    confs = configurations(make_run(knobs("self_moa", k=4, temperature=0.7)))
    records, stages = run_execute(confs, items, bench, slot, store, seed=0)
    assert [(s.stage, s.model) for s in stages] == [("propose", "small"), ("aggregate", "small")]
    assert len(engines) == 1  # same model proposes and aggregates: loaded once
    assert len(calls) == 2
    _, proposal_convs, proposal_params = calls[0]
    assert len(proposal_convs) == 2 * len(items)  # baseline and self_moa in ONE call
    assert sorted(p.n for p in proposal_params) == [1] * 3 + [4] * 3
    assert stages[0].sequences == 3 + 12
    _, agg_convs, agg_params = calls[1]
    assert len(agg_convs) == len(items) and all(p.n == 1 for p in agg_params)
    assert agg_convs[0][0]["role"] == "system"
    assert agg_convs[0][0]["content"].startswith(MOA_INSTRUCTION)


@pytest.mark.parametrize("shuffle", [False, True])
def test_aggregation_prompt_holds_every_proposal_in_the_recorded_order(setup, shuffle):
    bench, items, calls, _, slot, store = setup
    method = knobs("self_moa", k=5, temperature=0.7, shuffle=shuffle)
    records, _ = run_execute(configurations(make_run(method, False)), items, bench, slot, store, 0)
    system = calls[1][1][0][0]["content"]
    order = records[0]["order"]
    assert sorted(order) == [0, 1, 2, 3, 4]
    assert (order == [0, 1, 2, 3, 4]) is (not shuffle)
    texts = [records[0]["proposals"][j]["text"] for j in order]
    positions = [system.index(f"{i}. {t}") for i, t in enumerate(texts, 1)]
    assert positions == sorted(positions)


def test_other_aggregator_is_loaded_after_proposer_is_released(setup):
    bench, items, calls, engines, slot, store = setup
    run = make_run(knobs("self_moa", k=2, temperature=0.7, aggregator="big"))
    confs = configurations(run)
    assert confs[-1].label == "self_moa(k=2,agg=big)"
    _, stages = run_execute(confs, items, bench, slot, store, seed=0)
    assert [e.model_name for e in engines] == ["small", "big"]
    assert engines[0].closed and not engines[1].closed  # one model resident at a time
    assert stages[1].load_s == 0.5


def test_records_hold_proposals_aggregation_answer_and_score(setup):
    bench, items, _, _, slot, store = setup
    confs = configurations(make_run(knobs("self_moa", k=2, temperature=0.7)))
    records, _ = run_execute(confs, items, bench, slot, store, seed=0)
    assert len(records) == 2 * len(items)
    r = next(r for r in records if r["method"] == "self_moa")
    assert [p["sample_index"] for p in r["proposals"]] == [0, 1]
    assert all(
        {"model", "text", "generated_tokens", "answer", "score"} <= p.keys() for p in r["proposals"]
    )
    assert r["aggregation"]["model"] == "small" and r["final_text"] == r["aggregation"]["text"]
    assert r["answer"] == bench.extract_answer(r["final_text"])
    assert r["calls"] == 3 and r["generated_tokens"] == 15 and r["outcome"] == "ok"
    single = next(r for r in records if r["method"] == "single")
    assert single["aggregation"] is None and single["calls"] == 1


def test_scores_come_from_the_benchmark(setup):
    bench, items, _, _, slot, store = setup
    # the fake answers '#### <seed % 100>'; find a seed that makes item 0 correct
    seed = next(s for s in range(10000) if item_seed(s, items[0].id) % 100 == 12)
    records, _ = run_execute(
        configurations(make_run(knobs("single"))), items, bench, slot, store, seed=seed
    )
    assert records[0]["answer"] == "12" and records[0]["score"] == 1.0


def test_item_seeds_are_stable_and_distinct():
    assert item_seed(0, "gsm8k/test/1") == item_seed(0, "gsm8k/test/1")
    assert item_seed(0, "gsm8k/test/1") != item_seed(1, "gsm8k/test/1")
    seeds = {item_seed(0, f"gsm8k/test/{i}") for i in range(1000)}
    assert len(seeds) == 1000


def test_too_long_prompt_is_counted_not_fatal(bench_cfg, store):
    bench = get(bench_cfg)
    items = bench.load()
    calls = []
    limit = len(bench.messages(items[0])[0]["content"]) + 5  # proposals fit, aggregations do not
    slot = fake_slot(MODELS, lambda m: FakeEngine(m.name, calls, max_prompt_chars=limit))
    confs = configurations(make_run(knobs("self_moa", k=2, temperature=0.7)))
    records, stages = run_execute(confs, items, bench, slot, store, seed=0)
    moa = [r for r in records if r["method"] == "self_moa"]
    assert {r["outcome"] for r in moa} == {"prompt_too_long"}
    assert all(r["score"] == 0.0 and len(r["proposals"]) == 2 for r in moa)
    assert stages[1].skipped == len(items)
    summary = summarize(typed(records))
    assert summary["self_moa(k=2)"].outcomes == {"prompt_too_long": 3}


def test_summary_accounting_matches_records(setup):
    bench, items, _, _, slot, store = setup
    confs = configurations(make_run(knobs("self_moa", k=4, temperature=0.7)))
    records, stages = run_execute(confs, items, bench, slot, store, seed=0)
    s = summarize(typed(records))
    assert s["self_moa(k=4)"].calls == 3 * 5 and s["single"].calls == 3
    assert s["self_moa(k=4)"].generated_tokens == 3 * 5 * 5
    total = sum(m.generate_s for m in s.values())
    assert total == pytest.approx(sum(st.gen_s for st in stages))


def test_wilson_interval():
    lo, hi = wilson(10, 20)
    assert lo < 0.5 < hi and hi - lo == pytest.approx(0.4, abs=0.03)
    assert wilson(0, 20)[0] == 0.0 and wilson(0, 20)[1] > 0.1
    assert wilson(0, 0) == (0.0, 1.0)


def test_rerun_is_served_from_the_store_without_loading_a_model(setup):
    bench, items, calls, engines, slot, store = setup
    confs = configurations(make_run(knobs("self_moa", k=3, temperature=0.7)))
    first, _ = run_execute(confs, items, bench, slot, store, seed=0)
    slot.close()
    calls.clear()
    engines.clear()
    again, stages = run_execute(confs, items, bench, slot, store, seed=0)
    assert calls == [] and engines == []  # nothing generated, no model loaded
    assert all(s.made == 0 and s.found == s.sequences for s in stages)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "gen_s"} for r in rs]  # noqa: E731
    assert strip(again) == strip(first)


def test_growing_k_generates_only_the_new_samples_with_their_own_seeds(setup):
    bench, items, calls, _, slot, store = setup
    two = configurations(make_run(knobs("self_moa", k=2, temperature=0.7), False))
    run_execute(two, items, bench, slot, store, seed=0)
    calls.clear()
    four = configurations(make_run(knobs("self_moa", k=4, temperature=0.7), False))
    records, stages = run_execute(four, items, bench, slot, store, seed=0)
    _, _, params = calls[0]  # the proposal call: samples 2 and 3 of each item, seeds s+2, s+3
    assert [(p.n, p.seed) for p in params] == [(2, item_seed(0, i.id) + 2) for i in items]
    assert stages[0].found == 2 * len(items) and stages[0].made == 2 * len(items)
    texts = [p["text"] for p in records[0]["proposals"]]
    seed0 = item_seed(0, items[0].id)
    assert texts == [f"{'reasoning ' * 10}#### {seed0 % 100 + j}" for j in range(4)]


def test_missing_runs():
    from harness.generate import missing_runs

    assert missing_runs([None, None]) == [(0, 2)]
    assert missing_runs([1, None, None, 1, None]) == [(1, 2), (4, 1)]
    assert missing_runs([1, 1]) == []


LETTERS = {"a": "small", "b": "big"}


def study(*methods, baseline=False) -> RunConfig:
    return RunConfig(
        model=MODELS["small"],
        method=methods[0],
        configurations=list(methods),
        letters=LETTERS,
        baseline=baseline,
    )


def test_configurations_share_one_pool_of_samples_per_model(setup):
    bench, items, calls, engines, slot, store = setup
    run = study(
        knobs("self_moa", k=4, temperature=0.7),
        knobs("mixed_moa", mixture="aabb", temperature=0.7),
        knobs("majority_vote", k=3, temperature=0.7),
        baseline=True,
    )
    confs = configurations(run)
    assert [c.label for c in confs] == [
        "single",
        "single(b)",
        "self_moa(k=4)",
        "mixed_moa(aabb)",
        "majority_vote(k=3)",
    ]
    records, stages = run_execute(confs, items, bench, slot, store, seed=0)
    propose = [(model, [p.n for p in params]) for model, _, params in calls[:2]]
    # big: greedy n=1 and sampled n=2 per item; small: greedy n=1 and sampled n=max(4, 2, 3),
    # proposed last because it aggregates next (so it is loaded once)
    assert propose == [("big", [1] * 3 + [2] * 3), ("small", [1] * 3 + [4] * 3)]
    assert [e.model_name for e in engines] == ["big", "small"]
    moa = next(r for r in records if r["configuration"] == "mixed_moa(aabb)")
    moa_self = next(r for r in records if r["configuration"] == "self_moa(k=4)")
    assert [(p["model"], p["sample_index"]) for p in moa["proposals"]] == [
        ("small", 0),
        ("small", 1),
        ("big", 0),
        ("big", 1),
    ]
    assert moa["proposals"][:2] == moa_self["proposals"][:2]  # the same samples, not resampled
    assert moa["calls"] == 5 and moa["aggregation"]["model"] == "small"
    vote = next(r for r in records if r["method"] == "majority_vote")
    assert vote["aggregation"] is None and vote["calls"] == 3


def test_three_layer_moa_runs_an_intermediate_layer_of_agents(setup):
    bench, items, calls, _, slot, store = setup
    run = study(knobs("mixed_moa", mixture="ab", temperature=0.7, layers=3))
    records, stages = run_execute(configurations(run), items, bench, slot, store, seed=0)
    assert [s.stage for s in stages] == [
        "propose",
        "propose",
        "aggregate",
        "aggregate",
        "aggregate-2",
    ]
    r = records[0]
    assert r["calls"] == 2 + 2 + 1
    assert [x["layer"] for x in r["rounds"]] == [2, 2, 3]
    assert {x["model"] for x in r["rounds"][:2]} == {"small", "big"}


def test_self_moa_seq_repeats_the_synthesis_then_adds_new_samples(setup):
    bench, items, calls, _, slot, store = setup
    run = study(knobs("self_moa_seq", k=9, window=6, reserved=3, temperature=0.7))
    records, stages = run_execute(configurations(run), items, bench, slot, store, seed=0)
    assert [s.stage for s in stages] == ["propose", "aggregate", "aggregate-2"]
    r = records[0]
    first, second = calls[1][1][0][0]["content"], calls[2][1][0][0]["content"]
    samples = [p["text"] for p in r["proposals"]]
    assert "6. " + samples[5] in first and samples[6] not in first
    synthesis = r["rounds"][0]["text"]
    assert second.count(synthesis) >= 3 and all(t in second for t in samples[6:])
    assert r["final_text"] == r["rounds"][1]["text"] and r["calls"] == 9 + 2


def test_usc_picks_the_named_response_through_the_recorded_order(setup):
    bench, items, _, _, slot, store = setup
    run = study(knobs("usc", k=4, temperature=0.7))
    records, _ = run_execute(configurations(run), items, bench, slot, store, seed=0)
    for r in records:
        picked = r["order"][1]  # the fake always names Response 2
        assert r["aggregation"]["choice"] == picked
        assert r["final_text"] == r["proposals"][picked]["text"] and r["events"] == []


def test_usc_unparseable_choice_falls_back_to_sample_zero_and_is_counted():
    from harness.methods.prompts import parse_usc_choice

    assert parse_usc_choice("The most consistent response is Response 3.", 4) == 3
    assert parse_usc_choice("I pick response #2 of them", 4) == 2
    assert parse_usc_choice("Response 1 and Response 2 agree", 4) is None
    assert parse_usc_choice("The most consistent response is Response 9.", 4) is None
    assert parse_usc_choice("no idea", 4) is None


def test_majority_vote_takes_the_most_frequent_answer_earliest_on_ties():
    from harness.methods.majority_vote import majority

    assert majority(["3", "4", "4", None]) == 1
    assert majority(["5", "6"]) == 0
    assert majority([None, None]) is None


@pytest.mark.parametrize(
    "policy, outcome, event_count",
    [
        ("fail", "prompt_too_long", 1),
        ("drop_longest", "ok", 1),
        ("seq", "ok", 2),  # handover, then its first window (all 4 of k=4) is shortened
        ("shorten", "ok", 1),
    ],
)
def test_context_policies_are_applied_and_counted(bench_cfg, store, policy, outcome, event_count):
    bench = get(bench_cfg)
    items = bench.load()[:1]
    calls = []
    # proposals fit; an aggregation prompt of 4 proposals does not, of 3 (or a seq window) does
    probe_calls = []
    probe = run_execute(
        configurations(study(knobs("self_moa", k=3, temperature=0.7))),
        items,
        bench,
        fake_slot(MODELS, lambda m: FakeEngine(m.name, probe_calls)),
        Store(store.root / "probe"),
        0,
    )
    limit = sum(len(m["content"]) for m in probe_calls[1][1][0]) + 10
    slot = fake_slot(MODELS, lambda m: FakeEngine(m.name, calls, max_prompt_chars=limit))
    run = study(
        knobs(
            name="self_moa",
            k=4,
            temperature=0.7,
            aggregator_max_tokens=5,
            context_policy=policy,
        )
    )
    records, _ = run_execute(configurations(run), items, bench, slot, store, seed=0)
    r = records[0]
    assert r["outcome"] == outcome and len(r["events"]) == event_count
    assert r["events"][0] == f"context_{policy}"
    assert probe[0][0]["outcome"] == "ok"
    summary = summarize(typed(records))
    assert summary[r["configuration"]].events == {f"context_{policy}": event_count}


def test_duplicate_labels_are_a_config_error():
    from harness.config import ConfigError

    same = knobs("self_moa", k=2, temperature=0.7)
    with pytest.raises(ConfigError, match="both labelled 'self_moa\\(k=2\\)'"):
        configurations(study(same, same))
    configurations(study(same, replace(same, label="again")))


def test_baseline_greedy_for_each_proposer_model_of_a_study():
    run = study(knobs("mixed_moa", mixture="ab", temperature=0.7), baseline=True)
    assert [c.label for c in configurations(run)][:2] == ["single", "single(b)"]


def test_model_identity_tracks_checksum_folder_contents_and_revision(tmp_path):
    from harness.engines.vllm import model_identity

    gguf = model_identity(ModelConfig(name="x", gguf="smollm2-135m-instruct"))
    assert gguf.startswith("gguf:smollm2-135m-instruct-b179c9523d0e")
    (tmp_path / "config.json").write_text('{"a": 1}')
    local = ModelConfig(name="x", path=str(tmp_path))
    before = model_identity(local)
    (tmp_path / "config.json").write_text('{"a": 2}')
    assert model_identity(local) != before
    assert model_identity(ModelConfig(name="x", path="org/m", revision="abc")) == "hub:org/m@abc"


def test_seconds_are_charged_only_for_generations_made_in_this_run(setup):
    bench, items, _, _, slot, store = setup
    small = configurations(study(knobs("self_moa", k=2, temperature=0.7)))
    run_execute(small, items, bench, slot, store, seed=0)
    both = configurations(
        study(
            knobs("self_moa", k=2, temperature=0.7),
            knobs("usc", k=2, temperature=0.7),
        )
    )
    records, stages = run_execute(both, items, bench, slot, store, seed=0)
    assert all(r["gen_s"] == 0 for r in records if r["method"] == "self_moa")  # all stored
    assert all(r["gen_s"] > 0 for r in records if r["method"] == "usc")  # its selection is new


def test_planned_generations_count_shared_proposals_once_and_every_round():
    from harness.plan import planned_generations

    run = study(
        knobs("self_moa", k=4, max_tokens=10, aggregator_max_tokens=20),
        knobs("majority_vote", k=6, max_tokens=10),  # same stream: 6 samples serve both
        knobs("self_moa_seq", k=9, window=6, reserved=3, max_tokens=10, aggregator_max_tokens=20),
        knobs("self_moa", k=2, layers=3, max_tokens=10, aggregator_max_tokens=20, label="l3"),
        knobs("rank_fuse", k=4, max_tokens=10, aggregator_max_tokens=20, rank_max_tokens=30),
    )
    plan = planned_generations(configurations(run), items=3)
    assert plan["proposals"] == 9 * 3  # one stream, the most samples any configuration needs
    assert plan["aggregations"] == (1 + 2 + (2 + 1) + 2) * 3  # seq: 2 windows; layers: 2 agents
    assert plan["tokens"] == (9 * 10 + 20 + 2 * 20 + (2 * 10 + 20) + (30 + 20)) * 3


@pytest.mark.parametrize("prompt", ["moa", "critical"])
def test_prompt_knob_chooses_the_aggregator_prompt(setup, prompt):
    from harness.methods.prompts import AGGREGATOR_PROMPTS

    bench, items, calls, _, slot, store = setup
    method = knobs("self_moa", k=2, temperature=0.7, prompt=prompt)
    run_execute(configurations(make_run(method, False)), items, bench, slot, store, 0)
    system = calls[1][1][0][0]["content"]
    assert system.startswith(AGGREGATOR_PROMPTS[prompt][0])


def test_truncation_warning_names_the_knob_of_its_stage():
    from harness.metrics import truncation_warnings
    from harness.summary import StageStats

    stages = [
        StageStats("propose", "m", sequences=100, truncated=6),
        StageStats("aggregate", "m", sequences=100, truncated=50),
        StageStats("aggregate-2", "m", sequences=100, truncated=5),  # not over 5%
    ]
    plain = truncation_warnings(stages)
    assert [line.split("raise ")[1] for line in plain] == [
        "method.max_tokens",
        "method.aggregator_max_tokens",
    ]
    ranked = truncation_warnings(stages, make(knobs("rank_fuse"), "method", {}).token_caps())
    assert ranked[1].endswith("(rank_fuse's ranking: method.rank_max_tokens)")
