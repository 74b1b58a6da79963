"""Judged benchmarks end to end: real vLLM, SmolLM2 answering and judging (format, not quality)."""

import json
import subprocess
import sys

import pytest

from harness.benchmarks.alpaca_eval import REFERENCE_FILE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Our own two instructions with reference outputs, and one two-turn math question."""
    data = tmp_path_factory.mktemp("data")
    (data / REFERENCE_FILE).parent.mkdir(parents=True)
    outputs = [
        {"instruction": "Name three primary colours.", "output": "Red, yellow and blue."},
        {"instruction": "Give a synonym of 'quick'.", "output": "Fast."},
    ]
    (data / REFERENCE_FILE).write_text(json.dumps(outputs))
    (data / "mt_bench" / "reference_answer").mkdir(parents=True)
    question = {"question_id": 7, "category": "math", "turns": ["What is 6 times 7?", "Halve it."]}
    (data / "mt_bench" / "question.jsonl").write_text(json.dumps(question) + "\n")
    ref = {"question_id": 7, "choices": [{"index": 0, "turns": ["42", "21"]}]}
    (data / "mt_bench" / "reference_answer" / "gpt-4.jsonl").write_text(json.dumps(ref) + "\n")
    return data


def run(data, tmp_path, benchmark: str, judge_tokens: int) -> tuple[list[dict], dict, str]:
    run_dir = tmp_path / benchmark
    cmd = [
        sys.executable,
        "-m",
        "harness.run",
        "experiment=smoke",
        f"benchmark={benchmark}",
        f"benchmark.data_dir={data}",
        "benchmark.judge=smollm2-135m-instruct",
        f"benchmark.judge_max_tokens={judge_tokens}",
        "method.k=2",
        "method.max_tokens=32",
        "method.aggregator_max_tokens=32",
        f"store_dir={tmp_path / 'store'}",
        f"hydra.run.dir={run_dir}",
        "logger.mode=disabled",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in (run_dir / "records.jsonl").open()]
    return records, json.loads((run_dir / "metrics.json").read_text()), proc.stdout


def test_alpaca_eval_judges_every_proposal_and_answer_in_both_orders(data, tmp_path):
    records, metrics, stdout = run(data, tmp_path, "alpaca_eval", 8)
    assert len(records) == 2 * 2  # single + self_moa, two instructions
    for r in records:
        for graded in [r, *r["proposals"]]:
            judgment = graded["judgment"]
            assert len(judgment["replies"]) == 2 and all(judgment["replies"])
            assert graded["score"] in (0.0, 0.5, 1.0, None)
            assert (graded["score"] is None) == (judgment["verdicts"] == [None, None])
        assert r["outcome"] in ("ok", "judge_unparsed")
    assert metrics["metric"] == "alpaca_eval/win_rate"
    assert metrics["stages"][-1]["stage"] == "judge"
    assert "win_rate" in stdout


def test_mt_bench_answers_two_turns_and_rates_both(data, tmp_path):
    records, metrics, _ = run(data, tmp_path, "mt_bench", 16)
    assert sorted((r["configuration"], r["turn"]) for r in records) == [
        ("self_moa(k=2)", 1),
        ("self_moa(k=2)", 2),
        ("single", 1),
        ("single", 2),
    ]
    second = [r for r in records if r["turn"] == 2]
    assert all(r["question"] == "Halve it." and r["reference"] == "21" for r in second)
    assert all(r["final_text"] and len(r["proposals"]) >= 1 for r in second)
    for r in records:
        assert r["score"] is None or 1 <= r["score"] <= 10
    conf = metrics["configurations"]["self_moa(k=2)"]
    assert {"mt_bench/score", "mt_bench/score_turn1", "mt_bench/score_turn2"} <= set(conf)


def test_agreement_command_judges_annotated_pairs_in_both_orders(data, tmp_path):
    from harness.agreement import ANNOTATED, ANNOTATIONS

    for i, model in enumerate(ANNOTATED):
        path = data / ANNOTATIONS.format(model)
        path.parent.mkdir(parents=True, exist_ok=True)
        pairs = [
            {
                "instruction": "Say hello.",
                "output_1": "Hello!",
                "output_2": "Bye.",
                "preference": 1.1,
            },
            {"instruction": "Add 2 and 2.", "output_1": "5", "output_2": "4", "preference": 1.9},
            {"instruction": "x", "output_1": "y"},  # no output_2 nor preference: skipped
        ]
        path.write_text(json.dumps(pairs[i % 2 :] + pairs[: i % 2]))
    run_dir = tmp_path / "agreement"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.agreement",
            "benchmark=alpaca_eval",
            f"benchmark.data_dir={data}",
            "benchmark.judge=smollm2-135m-instruct",
            "benchmark.limit=2",
            f"store_dir={tmp_path / 'store'}",
            f"hydra.run.dir={run_dir}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = json.loads((run_dir / "agreement.json").read_text())["agreement"]
    assert set(table) == {*ANNOTATED, "all"}
    assert table["all"]["pairs"] == 6
    if table["all"]["judged"] == 6:  # one of the two pairs per model was won by the model
        assert table["all"]["always_reference"] == 0.5
    for a in table.values():
        assert 0.0 <= a["agreement"] <= 1.0 and a["judged"] + a["unparsed"] == a["pairs"]
    assert "always-reference" in proc.stdout and "agreement" in proc.stdout
