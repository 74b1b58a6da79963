import csv
from pathlib import Path

import pytest

from harness import benchmarks
from harness.benchmarks import get
from harness.benchmarks.mmlu import INSTRUCTION, extract_answer
from harness.benchmarks.mmlu_redux import corrected_letter, normalise_label
from harness.errors import DataError


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Reasoning...\nAnswer: B", "B"),
        ("answer: c", "C"),  # lower case after an anchor
        ("ANSWER: D", "D"),
        ("The answer is (C).", "C"),
        ("The correct answer is **A**.", "A"),
        ("**Answer:** (D)", "D"),
        ("The best option is B, since ...", "B"),
        ("So the answer is $\\boxed{C}$", "C"),
        ("\\boxed{\\text{(B)}}", "B"),
        ("\\boxed{A. Paris}", "A"),
        ("Answer: A\nWait, that is wrong.\nAnswer: D", "D"),  # the last one wins
        ("\\boxed{B} ... on reflection the answer is C", "C"),
        ("The answer is C ... final: \\boxed{B}", "B"),
        ("C", "C"),
        ("(B)", "B"),
        ("  **D.**  ", "D"),
        ("A.", "A"),
        ("A good question. I am not sure.", None),  # an article, not an answer
        ("A", "A"),
        ("The answer is Absolutely unclear", None),
        ("The answer is E", None),
        ("Answer: 2", None),
        ("I think B or C.", None),
        ("", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_label_and_corrected_answer_normalisation():
    assert normalise_label(" Wrong_Groundtruth ") == "wrong groundtruth"
    assert normalise_label("OK ") == "ok"
    assert normalise_label(None) == ""
    assert [corrected_letter(x) for x in ["C", "c", "(A)", "0", "3", "4", "", None, "AB"]] == [
        "C",
        "C",
        "A",
        "A",
        "D",
        None,
        None,
        None,
        None,
    ]


# Our own invented questions, not taken from the dataset.
SUBJECTS = {
    "astro_facts": [
        ("Which planet is closest to the Sun?", ["Venus", "Mercury", "Mars", "Earth"], 1),
        ("How many moons does Mars have?", ["0", "1", "2", "3"], 2),
        ("Which is a gas giant?", ["Jupiter", "Mars", "Mercury", "Venus"], 0),
    ],
    "basic_arith": [
        ("What is 6 x 7?", ["36", "42", "48", "54"], 1),
        ("What is 10 / 4?", ["2", "2.5", "3", "4"], 1),
    ],
}


def _write_mmlu(root: Path) -> Path:
    folder = root / "mmlu" / "test"
    folder.mkdir(parents=True)
    for subject, rows in SUBJECTS.items():
        with (folder / f"{subject}_test.csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["question", "choice0", "choice1", "choice2", "choice3", "answer"])
            for q, choices, a in rows:
                w.writerow([q, *choices, a])
    return folder


def test_mmlu_loader_interleaves_subjects(tmp_path):
    _write_mmlu(tmp_path)
    bench = get(benchmarks.knobs(name="mmlu", data_dir=str(tmp_path)))
    items = bench.load()
    assert [i.id for i in items] == [
        "mmlu/astro_facts/0",
        "mmlu/basic_arith/0",
        "mmlu/astro_facts/1",
        "mmlu/basic_arith/1",
        "mmlu/astro_facts/2",
    ]
    assert [i.reference for i in items] == ["B", "B", "C", "B", "A"]
    assert bench.report.skipped == []
    content = bench.messages(items[0])[0]["content"]
    assert "A. Venus\nB. Mercury\nC. Mars\nD. Earth" in content and INSTRUCTION in content
    assert bench.score(items[0], extract_answer("Answer: B")) == 1.0
    assert bench.score(items[0], "A") == 0.0 and bench.score(items[0], None) == 0.0


def test_mmlu_limit_spreads_over_subjects(tmp_path):
    _write_mmlu(tmp_path)
    items = get(benchmarks.knobs(name="mmlu", data_dir=str(tmp_path), limit=2)).load()
    assert [i.id for i in items] == ["mmlu/astro_facts/0", "mmlu/basic_arith/0"]


def test_mmlu_malformed_rows_are_skipped_with_file_and_line(tmp_path):
    folder = _write_mmlu(tmp_path)
    path = folder / "basic_arith_test.csv"
    with path.open("a", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["Multi\nline question with a bad answer", "1", "2", "3", "4", "7"])
        w.writerow(["Too short", "1", "2"])
        w.writerow(["What is 1 + 1?", "1", "2", "3", "4", "1"])
    bench = get(benchmarks.knobs(name="mmlu", data_dir=str(tmp_path)))
    items = bench.load()
    assert bench.report.skipped == [
        f"{path}:4: answer is not an index 0-3",
        f"{path}:6: wrong number of columns",
    ]
    assert items[-1].id == "mmlu/basic_arith/4" and items[-1].reference == "B"


REDUX_HEADER = "choices;question;error_type;answer;correct_answer;source;potential_reason"
REDUX_ROWS = [
    # choices; question; error_type; answer; correct_answer
    (
        "['Caf\u00e9', 'Tea', 'Milk', 'Water']",
        "Which drink is named with an \u00e9?",
        "ok",
        "0",
        "",
    ),
    ("['1', '2', '3', '4']", "How many legs has a tripod?", "Wrong Groundtruth", "0", "C"),
    (
        "['red', 'blue', 'green', 'grey']",
        "Colour of a clear daytime sky?",
        "wrong_groundtruth",
        "0",
        "1",
    ),
    (
        "['x', 'y', 'z', 'w']",
        "Which letter comes last in the alphabet?",
        "Wrong groundtruth",
        "0",
        "",
    ),
    ("['a', 'b', 'c', 'd']", "An unclear question?", "Bad Question Clarity", "1", ""),
    ("['a', 'b', 'c', 'd']", "Two right options?", "multiple correct answers", "1", ""),
    ("['only', 'three', 'options']", "Broken choices?", "OK", "1", ""),
    ("['a', 'b', 'c', 'd']", "https://example.org/some/page", "ok", "2", ""),
    ("['Oslo', 'Bergen', 'Tromso', 'Bodo']", "Capital of Norway?", "OK ", "0", ""),
]


def _write_redux(root: Path) -> tuple[Path, Path]:
    folder = root / "mmlu_redux"
    folder.mkdir(parents=True)
    semi = folder / "mmlu_quirky_subject.csv"  # ';'-delimited, cp1252, reordered columns
    lines = [REDUX_HEADER]
    for choices, q, label, a, corr in REDUX_ROWS:
        lines.append(";".join([f'"{choices}"', f'"{q}"', label, a, corr, "src", ""]))
    semi.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    comma = folder / "mmlu_another_subject.csv"
    with comma.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["question", "choices", "answer", "error_type", "source", "correct_answer"])
        w.writerow(["What is 2 + 2?", "['3', '4', '5', '6']", "1", "ok", "s", ""])
        w.writerow(["Expert-only question", "['p', 'q', 'r', 's']", "3", "expert", "s", ""])
        w.writerow(["Not a list", "[unclosed", "1", "ok", "s", ""])
    return semi, comma


def test_redux_loader_filters_labels_and_reports_malformed_rows(tmp_path):
    semi, comma = _write_redux(tmp_path)
    bench = get(benchmarks.knobs(name="mmlu_redux", data_dir=str(tmp_path)))
    items = bench.load()
    by_id = {i.id: i.reference for i in items}
    assert by_id == {
        "mmlu_redux/another_subject/0": "B",
        "mmlu_redux/quirky_subject/0": "A",
        "mmlu_redux/quirky_subject/1": "C",  # corrected by letter
        "mmlu_redux/quirky_subject/2": "B",  # corrected by 0-based index
        "mmlu_redux/quirky_subject/8": "A",
    }
    # subjects interleave in sorted order
    assert [i.id for i in items][:3] == [
        "mmlu_redux/another_subject/0",
        "mmlu_redux/quirky_subject/0",
        "mmlu_redux/quirky_subject/1",
    ]
    cafe = next(i for i in items if i.id == "mmlu_redux/quirky_subject/0")
    assert "A. Caf\u00e9" in cafe.question  # cp1252 decoded
    assert bench.report.skipped == [
        f"{comma}:4: choices are not a list of 4 options",
        f"{semi}:8: choices are not a list of 4 options",
        f"{semi}:9: question is a URL, not a question",
    ]
    assert dict(bench.filtered) == {
        "wrong groundtruth (no usable correct_answer)": 1,
        "bad question clarity": 1,
        "multiple correct answers": 1,
        "expert": 1,
    }


def test_missing_local_data_and_no_hub_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    for name, hub in [("mmlu", "cais/mmlu"), ("mmlu_redux", "edinburgh-dawg/mmlu-redux-2.0")]:
        cfg = benchmarks.knobs(name=name, data_dir=str(tmp_path), hub_id=hub, hub_config=None)
        with pytest.raises(DataError, match=r"no local files .*mmlu.*not tried"):
            get(cfg).load()


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(
    not (SHARED / "mmlu" / "test").is_dir(), reason="workplace copy of MMLU not present"
)
def test_real_mmlu_test_loads_completely():
    bench = get(benchmarks.knobs(name="mmlu", data_dir=str(SHARED)))
    items = bench.load()
    assert len(items) == 14042 and bench.report.skipped == []
    assert len({i.id.split("/")[1] for i in items[:57]}) == 57


@pytest.mark.skipif(
    not (SHARED / "mmlu_redux").is_dir(), reason="workplace copy of MMLU-Redux not present"
)
def test_real_mmlu_redux_filtered_counts():
    bench = get(benchmarks.knobs(name="mmlu_redux", data_dir=str(SHARED)))
    items = bench.load()
    # 5,330 "ok" + 102 corrected "wrong groundtruth" - 1 row with a URL for a question
    assert len(items) == 5431
    assert len(bench.report.skipped) == 1
    assert "mmlu_high_school_microeconomics.csv:101: question is a URL" in bench.report.skipped[0]
    assert sum(bench.filtered.values()) == 268
