import json

import pytest

from harness import benchmarks
from harness.benchmarks import get
from harness.benchmarks.gsm8k import extract_answer, is_equivalent, reference_answer
from harness.errors import DataError


@pytest.mark.parametrize(
    "text, expected",
    [
        ("so 3*4=12\n#### 12", "12"),
        ("#### 1,234", "1234"),
        ("#### $18", "18"),
        ("#### -7", "-7"),
        ("#### 2.50", "2.50"),
        ("first #### 3 then corrected\n#### 4", "4"),  # last marker wins
        ("The answer is \\boxed{42}.", "42"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # LaTeX kept for math-verify
        ("\\boxed{\\text{18 dollars}}", "18"),  # the number in a box with its unit
        ("So the answer is 56 apples.", "56"),
        ("Answer: **9**", "9"),
        ("She pays 5 + 6 = 11 dollars.", "11"),  # fallback: last number
        ("I think it is 10. Actually 12 dollars.", "12"),
        ("12 eggs, so #### 3 boxes with 4 left", "3"),  # marker beats later numbers
        ("No idea.", None),
        ("", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_reference_answer_takes_number_after_last_marker():
    assert reference_answer("a #### b\n2 + 3 = 5\n#### 5") == "5"
    assert reference_answer("1,000 + 1 = 1,001\n#### 1,001") == "1001"
    assert reference_answer("no marker here") is None
    assert reference_answer("#### many") is None


@pytest.mark.parametrize(
    "ref, answer, ok",
    [
        ("18", "18", True),
        ("18", "18.0", True),
        ("18", "\\frac{36}{2}", True),
        ("1000", "1000", True),
        ("18", "19", False),
        ("18", None, False),
    ],
)
def test_is_equivalent_uses_math_verify(ref, answer, ok):
    assert is_equivalent(ref, answer) is ok


def test_loader_reads_items_with_stable_ids(bench_cfg):
    bench = get(bench_cfg)
    items = bench.load()
    assert [i.reference for i in items] == ["12", "25", "750"]
    assert [i.id for i in items] == ["gsm8k/test/0", "gsm8k/test/1", "gsm8k/test/2"]
    assert bench.report.skipped == []


def test_loader_honours_limit(bench_cfg):
    bench_cfg.limit = 2
    assert len(get(bench_cfg).load()) == 2
    bench_cfg.limit = 0
    assert get(bench_cfg).load() == []


def test_malformed_records_are_skipped_with_file_and_line(bench_cfg, data_dir):
    path = data_dir / "gsm8k" / "test.jsonl"
    with path.open("a") as f:
        f.write("{not json\n")
        f.write(json.dumps({"question": "q?", "answer": "no marker"}) + "\n")
        f.write(json.dumps({"answer": "#### 3"}) + "\n")
        f.write(json.dumps([1, 2]) + "\n")
        f.write(json.dumps({"question": "ok?", "answer": "#### 7"}) + "\n")
    bench = get(bench_cfg)
    items = bench.load()
    assert [i.reference for i in items] == ["12", "25", "750", "7"]
    assert items[-1].id == "gsm8k/test/7"  # ids are line positions, unaffected by skipped lines
    assert len(bench.report.skipped) == 4
    assert bench.report.skipped[0].startswith(f"{path}:4: not JSON")
    assert f"{path}:5:" in bench.report.skipped[1]


def test_missing_local_data_and_no_hub_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    cfg = benchmarks.knobs(
        name="gsm8k", data_dir=str(tmp_path), hub_id="openai/gsm8k", hub_config="main"
    )
    with pytest.raises(DataError, match=r"no local file .*gsm8k/test.jsonl .*not tried"):
        get(cfg).load()


def test_unknown_benchmark_lists_the_known_ones():
    with pytest.raises(ValueError, match="allowed: .*gsm8k"):
        get(benchmarks.knobs(name="nope"))


def test_prompt_asks_for_the_marker_format(bench_cfg):
    bench = get(bench_cfg)
    msgs = bench.messages(bench.load()[0])
    assert msgs[0]["role"] == "user" and "#### <number>" in msgs[0]["content"]


SHARED = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(
    not (SHARED / "gsm8k" / "test.jsonl").exists(),
    reason="workplace copy of GSM8K (../shared/data) not present",
)
def test_real_gsm8k_test_split_loads_completely():
    bench = get(benchmarks.knobs(name="gsm8k", data_dir=str(SHARED)))
    items = bench.load()
    assert len(items) == 1319 and bench.report.skipped == []
