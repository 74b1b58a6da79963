"""Judge prompts and parsers, the AlpacaEval and MT-Bench loaders, and judged runs (fake engine)."""

import json

import pytest

from harness import benchmarks
from harness.agreement import agreement
from harness.benchmarks import get
from harness.benchmarks.alpaca_eval import REFERENCE_FILE
from harness.benchmarks.judge import (
    pairwise_messages,
    pairwise_verdict,
    parse_pairwise,
    parse_rating,
    rating_messages,
)
from harness.config import ModelConfig, RunConfig
from harness.methods import knobs
from harness.metrics import summarize
from harness.plan import configurations
from harness.store import Store
from harness.summary import MetricKeys
from tests.conftest import FakeEngine, fake_slot, run_execute, typed


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1", 1),
        ("2", 2),
        ("  **2**", 2),
        ("Output (1)", 1),
        ("(2) is better because it is complete.", 2),
        ("After comparing both, Output (2) is better than the other.", 2),
        ("The better output is 1.", 1),
        ("Both outputs 1 and 2 are fine.", None),
        ("I cannot decide.", None),
        ("", None),
        ("10 reasons", None),
        ("1.5", None),
    ],
)
def test_parse_pairwise(text, expected):
    assert parse_pairwise(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[[7]] A fine answer.", 7.0),
        ("Rating: [[9.5]]", 9.5),
        ("Rating: 4. Wrong result.", 4.0),
        ("I would give it a score of 3", 3.0),
        ("This deserves 8/10.", 8.0),
        ("6 out of 10", 6.0),
        ("5 - decent", 5.0),
        ("[[11]]", None),
        ("[[0]]", None),
        ("The answer is helpful.", None),
        ("", None),
    ],
)
def test_parse_rating(text, expected):
    assert parse_rating(text) == expected


def test_pairwise_prompt_holds_both_outputs_in_order():
    conv = pairwise_messages("Name a colour.", "Red.", "Blue.")
    text = conv[-1]["content"]
    assert text.index("Output (1):\nRed.") < text.index("Output (2):\nBlue.")
    assert conv[0]["role"] == "system" and "1 or 2" in text


def test_rating_prompt_shows_dialogue_reference_and_answer():
    dialogue = [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And times 3?"},
    ]
    text = rating_messages(dialogue, "12", reference="12")[-1]["content"]
    for part in ("[User, turn 1]\nWhat is 2+2?", "[Assistant, turn 1]\n4", "[User, turn 2]"):
        assert part in text
    assert "[Reference answer to turn 2]\n12" in text and "to turn 2" in text
    assert "Reference" not in rating_messages(dialogue[:1], "4")[-1]["content"]


def test_agreement_counts_ties_half_and_reports_the_always_reference_bar():
    rows = [{"preference": p} for p in (1.9, 1.1, 1.2, 1.05)]  # model won only the first
    table = agreement(rows, [1.0, 0.5, 1.0, None])
    assert table["judged"] == 3 and table["unparsed"] == 1
    assert table["agreement"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert table["always_reference"] == pytest.approx(2 / 3)
    assert table["position_consistent"] == pytest.approx(2 / 3)
    assert table["published_win_rate"] == pytest.approx(1 / 3)


def test_pairwise_verdict_cancels_position_bias():
    assert pairwise_verdict(["1", "2"]) == (1.0, [1, 2])  # ours wins in both orders
    assert pairwise_verdict(["1", "1"]) == (0.5, [1, 1])  # always the first: a tie
    assert pairwise_verdict(["2", "1"]) == (0.0, [2, 1])
    assert pairwise_verdict(["?", "2"]) == (1.0, [None, 2])  # the parsed order counts
    assert pairwise_verdict(["?", None]) == (None, [None, None])


@pytest.fixture
def judged_data(tmp_path):
    d = tmp_path / "data"
    (d / REFERENCE_FILE).parent.mkdir(parents=True)
    outputs = [
        {"instruction": "Say hi.", "output": "Hi!", "generator": "ref"},
        {"instruction": "", "output": "x"},  # malformed: empty instruction
        ["not", "an", "object"],
        {"instruction": "Count to 3.", "output": "1 2 3"},
    ]
    (d / REFERENCE_FILE).write_text(json.dumps(outputs))
    mt = d / "mt_bench"
    (mt / "reference_answer").mkdir(parents=True)
    questions = [
        {"question_id": 1, "category": "writing", "turns": ["Write a line.", "Shorter."]},
        {"question_id": 2, "category": "math", "turns": ["2+2?", "Times 3?"]},
        {"question_id": 3, "category": "math", "turns": ["only one"]},
    ]
    (mt / "question.jsonl").write_text("\n".join(json.dumps(q) for q in questions) + "\n{broken\n")
    ref = {"question_id": 2, "choices": [{"index": 0, "turns": ["4", "12"]}]}
    (mt / "reference_answer" / "gpt-4.jsonl").write_text(json.dumps(ref) + "\n")
    return d


def test_alpaca_loader_skips_and_reports_malformed_records(judged_data):
    bench = get(benchmarks.knobs(name="alpaca_eval", data_dir=str(judged_data)))
    items = bench.load()
    assert [(i.id, i.question, i.reference) for i in items] == [
        ("alpaca_eval/0", "Say hi.", "Hi!"),
        ("alpaca_eval/3", "Count to 3.", "1 2 3"),
    ]
    assert (
        len(bench.report.skipped) == 2
        and "[1]: missing or empty 'instruction'" in (bench.report.skipped[0])
    )


def test_mt_bench_loader_attaches_references_to_math_only(judged_data):
    bench = get(benchmarks.knobs(name="mt_bench", data_dir=str(judged_data)))
    items = bench.load()
    assert [i.id for i in items] == ["mt_bench/1", "mt_bench/2"]
    assert items[0].turn_references == ("", "") and items[1].turn_references == ("4", "12")
    assert any(":3:" in s and "2 non-empty" in s for s in bench.report.skipped)
    assert any(":4:" in s and "not JSON" in s for s in bench.report.skipped)
    second = bench.followup(items[1], 2)
    assert (second.id, second.question, second.reference, second.turn) == (
        "mt_bench/2/turn2",
        "Times 3?",
        "12",
        2,
    )


def judged_run(data, name, method, tmp_path):
    models = {n: ModelConfig(name=n, path=f"org/{n}") for n in ("small", "judge")}
    run = RunConfig(model=models["small"], method=method)
    bench = get(benchmarks.knobs(name=name, data_dir=str(data), judge="judge"))
    calls = []
    slot = fake_slot(models, lambda m: FakeEngine(m.name, calls))
    store = Store(tmp_path / "store")
    records, stages = run_execute(configurations(run), bench.load(), bench, slot, store, 0, "judge")
    return bench, records, stages, calls


def test_alpaca_run_judges_every_proposal_and_final_answer_in_both_orders(judged_data, tmp_path):
    method = knobs("self_moa", k=2, temperature=0.7)
    bench, records, stages, calls = judged_run(judged_data, "alpaca_eval", method, tmp_path)
    judge_calls = [c for c in calls if c[0] == "judge"]
    assert len(judge_calls) == 1  # one batched stage
    # every distinct response of an item is judged once, in two orders
    distinct = {
        (r["item_id"], t)
        for r in records
        for t in [r["final_text"]] + [p["text"] for p in r["proposals"]]
    }
    assert len(judge_calls[0][1]) == 2 * len(distinct) == 2 * 2 * 3  # greedy = sample 0 here
    for r in records:  # the fake judge always prefers Output (1): a tie in both orders
        assert r["score"] == 0.5 and r["outcome"] == "ok" and r["answer"] is None
        assert all(p["score"] == 0.5 for p in r["proposals"])
        assert r["judgment"]["verdicts"] == [1, 1]
    summary = summarize(typed(records))
    assert summary["self_moa(k=2)"].score == 0.5  # alpaca_eval/win_rate
    assert [s.stage for s in stages][-1] == "judge"


def test_mt_bench_second_turn_continues_each_configurations_own_answer(judged_data, tmp_path):
    method = knobs("self_moa", k=2, temperature=0.7)
    bench, records, _, calls = judged_run(judged_data, "mt_bench", method, tmp_path)
    assert len(records) == 2 * 2 * 2  # configurations x items x turns
    second = [r for r in records if r["turn"] == 2]
    finals = {(r["configuration"], r["item_id"]): r["final_text"] for r in records}
    proposal_convs = [c for call in calls if call[0] == "small" for c in call[1]]
    for r in second:
        first = finals[(r["configuration"], r["item_id"].removesuffix("/turn2"))]
        # the turn-2 proposals were asked in a dialogue holding this configuration's answer
        assert any(
            len(c) == 3 and c[1] == {"role": "assistant", "content": first} for c in proposal_convs
        )
    # the fake judge rates len(judge conversation) = 2 (system + user)
    assert {r["score"] for r in records} == {2.0}
    summary = summarize(typed(records))["single"]
    keys = MetricKeys(bench.name, bench.metric)
    assert keys.turn(1) == "mt_bench/score_turn1"
    assert summary.turn_scores[1] == summary.turn_scores[2] == 2.0


def test_judged_benchmark_needs_a_judge_and_refuses_majority_vote(judged_data):
    from hydra.errors import ConfigCompositionException

    from harness.config import ConfigError
    from harness.plan import checked_run, compose

    with pytest.raises(ConfigError, match="set benchmark.judge"):
        checked_run(compose("benchmark=alpaca_eval", "benchmark.judge=null"))
    with pytest.raises(ConfigError, match="majority_vote needs extractable answers"):
        checked_run(compose("benchmark=mt_bench", "method=majority_vote", "method.temperature=0.7"))
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        checked_run(compose("benchmark=mt_bench", "benchmark.judge=nope"))
    # the judge is a knob of judged benchmarks only: gsm8k's knobs have no such key
    with pytest.raises(ConfigCompositionException, match="benchmark.judge"):
        compose("benchmark=gsm8k", "benchmark.judge=smollm2-135m-instruct")
    with pytest.raises(ConfigError, match="benchmark.judge is not a config key; .* of gsm8k"):
        checked_run(compose("benchmark=gsm8k", "+benchmark.judge=smollm2-135m-instruct"))
    run = checked_run(compose("benchmark=alpaca_eval"))
    assert run.benchmark.judge in run.models


def test_read_annotations_keeps_valid_pairs_up_to_the_limit(tmp_path):
    from harness.agreement import ANNOTATIONS, read_annotations
    from harness.config import ConfigError

    path = tmp_path / ANNOTATIONS.format("m")
    path.parent.mkdir(parents=True)
    good = {"instruction": "i", "output_1": "a", "output_2": "b", "preference": 1.7}
    path.write_text(json.dumps([good, {"instruction": "i"}, "junk", good, good]))
    rows, skipped = read_annotations(tmp_path, "m", limit=2)
    assert [r["index"] for r in rows] == [0, 3] and len(skipped) == 2
    with pytest.raises(ConfigError, match="no annotations for other"):
        read_annotations(tmp_path, "other", None)
