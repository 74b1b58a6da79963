"""The real scoring path (extract_answer, then score) against a graded corpus of responses.

tests/data/extraction/<benchmark>.jsonl holds responses, mostly real greedy outputs of our CPU
models (records of 50-item runs; the question is referenced by `item_id`; GSM8K also 60 of
Qwen2.5-Coder-0.5B, 15 of them correct, each graded by reading it whole; MMLU 30 of its terse
"Answer: C" lines, 8 correct), plus written ones for the forms the issue names. Each has the
gold answer, the verdict a careful human grader gives
(`correct`), and `ambiguous` where graders could disagree (e.g. SmolLM2's "A. <text of option
C>"). Every unambiguous verdict must be reproduced.
"""

import json
from pathlib import Path

import pytest

from harness import benchmarks
from harness.benchmarks import get
from harness.benchmarks.base import Item

CORPUS = Path(__file__).parent / "data" / "extraction"
BENCHMARKS = ["gsm8k", "mmlu", "math500"]
FIELDS = {"id", "source", "item_id", "class", "gold", "response", "correct", "ambiguous", "note"}


def _cases(name: str) -> list[dict]:
    lines = (CORPUS / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _unambiguous():
    for name in BENCHMARKS:
        for case in _cases(name):
            if not case["ambiguous"]:
                yield pytest.param(name, case, id=case["id"])


@pytest.mark.parametrize("name, case", list(_unambiguous()))
def test_scoring_agrees_with_the_human_grader(name, case):
    bench = get(benchmarks.knobs(name=name))
    item = Item(id=case["item_id"] or case["id"], question="", reference=case["gold"])
    answer = bench.extract_answer(case["response"])
    assert bench.score(item, answer) == float(case["correct"]), f"read {answer!r}"


@pytest.mark.parametrize("name", BENCHMARKS)
def test_corpus_is_large_mostly_real_and_well_formed(name):
    cases = _cases(name)
    assert len(cases) >= 60
    assert sum(c["source"] != "written" for c in cases) > len(cases) / 2
    assert len({c["id"] for c in cases}) == len(cases)
    for case in cases:
        assert set(case) == FIELDS, case["id"]
        assert isinstance(case["correct"], bool) and isinstance(case["ambiguous"], bool)
        assert case["source"] == "written" or case["item_id"].startswith(name.split("_")[0])


@pytest.mark.parametrize(
    "name, classes",
    [
        (
            "mmlu",
            {
                "bold",
                "latex",
                "parentheses",
                "lower_case",
                "option",
                "letter_paren_text",
                "letter_dot_text",
                "full_width",
                "self_correction",
                "two_letters",
                "option_lowercase",
                "self_correction_switch",
                "boxes_disagree",
            },
        ),
        (
            "gsm8k",
            {
                "words",
                "thousands_comma",
                "thousands_space",
                "currency_in_box",
                "verification_after",
                "parts_before_total",
                "fraction_vs_decimal",
                "boxes_disagree",
                "boxes_self_correction",
            },
        ),
        (
            "math500",
            {
                "several_boxes_set",
                "several_boxes_self_correction",
                "several_boxes_hedged",
                "or_against_set",
                "fraction_vs_decimal",
            },
        ),
    ],
)
def test_corpus_covers_the_named_response_classes(name, classes):
    assert classes <= {c["class"] for c in _cases(name)}


def test_correct_answers_are_covered_by_real_responses_too():
    """Real correct responses of the strongest CPU model (Qwen2.5-Coder-0.5B, greedy, graded by
    hand): an extractor that always returns nothing must fail a good share of the corpus."""
    cases = [c for c in _cases("gsm8k") if not c["ambiguous"]]
    real_correct = [c for c in cases if c["correct"] and c["source"] != "written"]
    assert len(real_correct) >= 15
    assert {c["source"] for c in real_correct} >= {
        "qwen2.5-coder-0.5b-instruct greedy, 60-item run (512 tokens)"
    }
    assert sum(c["correct"] for c in cases) >= len(cases) / 3


def test_two_letters_never_count_as_correct():
    bench = get(benchmarks.knobs(name="mmlu"))
    for case in _cases("mmlu"):
        if case["class"] == "two_letters":
            for gold in "ABCD":
                item = Item(id=case["id"], question="", reference=gold)
                assert bench.score(item, bench.extract_answer(case["response"])) == 0.0


@pytest.mark.parametrize("case_id", ["math500-gemma-test-6", "math500-gemma-test-8"])
def test_a_repeated_label_is_no_answer(case_id):
    # gemma-3-270m's degenerate "Answer:\n\nAnswer:\n..." used to be read as the answer "Answer:"
    (case,) = [c for c in _cases("math500") if c["id"] == case_id]
    assert get(benchmarks.knobs(name="math500")).extract_answer(case["response"]) is None
