import json
from pathlib import Path

import pytest

from harness import benchmarks
from harness.benchmarks import get
from harness.benchmarks.math500 import extract_answer, is_equivalent
from harness.errors import DataError


@pytest.mark.parametrize(
    "text, expected",
    [
        ("So $x = 3$, and the answer is \\boxed{3}.", "3"),
        ("\\boxed{\\frac{14}{3}}", "\\frac{14}{3}"),
        ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        (
            "\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}",
            "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
        ),
        ("try \\boxed{2}, no wait: \\boxed{5}", "5"),  # the last box wins
        ("\\boxed{7} then an empty \\boxed{}", "7"),
        ("\\boxed{p - q} Answer: 4", "p - q"),  # a box beats a stated answer
        ("The final answer is $\\frac{1}{2}$. I hope it is correct.", "\\frac{1}{2}"),
        ("Final Answer: The final answer is $5$. I hope it is correct.", "5"),
        ("Answer: 4\nfinal answer is 10\\%.", "10\\%"),  # the last statement wins
        ("Answer: **p - q**", "p - q"),
        ("Answer:", None),
        ("We get 12 and then 13.", None),  # no number fallback
        ("\\boxed{3", None),  # unbalanced
        ("", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "ref, answer, ok",
    [
        ("\\frac{14}{3}", "\\dfrac{14}{3}", True),
        ("\\frac{14}{3}", "14/3", True),
        ("\\frac{14}{3}", "$\\frac{14}{3}$", True),
        ("\\frac{14}{3}", "4.67", False),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\frac{\\pi}{2})", True),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi)", False),
        ("p - q", "-q + p", True),
        ("p - q", "q - p", False),
        ("10\\%", "10\\%", True),
        ("10\\%", "10", True),
        ("10\\%", "11\\%", False),
        ("2 \\sqrt{5}", "\\sqrt{20}", True),
        ("\\text{(C)}", "(C)", True),
        ("-2,1", "1, -2", True),
        ("3", None, False),
        ("3", "", False),
    ],
)
def test_is_equivalent_on_latex_answers(ref, answer, ok):
    assert is_equivalent(ref, answer) is ok


def _write(path: Path, records: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for r in records:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")


def test_loader_ids_references_and_malformed_lines(tmp_path):
    path = tmp_path / "math500" / "test.jsonl"
    _write(
        path,
        [
            {"problem": "What is $2+3$?", "answer": "5", "solution": "\\boxed{5}"},
            "{broken",
            {"problem": "Simplify $\\frac{6}{4}$.", "answer": "\\frac{3}{2}"},
            {"problem": "", "answer": "1"},
            {"problem": "No answer here?"},
            {"problem": "Compute $7 \\cdot 6$.", "answer": " 42 "},
        ],
    )
    bench = get(benchmarks.knobs(name="math500", data_dir=str(tmp_path)))
    items = bench.load()
    assert [i.id for i in items] == ["math500/test/0", "math500/test/2", "math500/test/5"]
    assert [i.reference for i in items] == ["5", "\\frac{3}{2}", "42"]
    assert [s.split(": ")[0] for s in bench.report.skipped] == [
        f"{path}:2",
        f"{path}:4",
        f"{path}:5",
    ]
    msg = bench.messages(items[0])[0]
    assert msg["role"] == "user" and "\\boxed{}" in msg["content"]
    assert bench.score(items[1], extract_answer("so \\boxed{1.5}")) == 1.0
    assert bench.score(items[1], "2") == 0.0
    assert bench.score(items[1], None) == 0.0


def test_missing_local_data_and_no_hub_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    cfg = benchmarks.knobs(name="math500", data_dir=str(tmp_path), hub_id="HuggingFaceH4/MATH-500")
    with pytest.raises(DataError, match=r"no local file .*math500/test.jsonl .*not tried"):
        get(cfg).load()


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(
    not (SHARED / "math500" / "test.jsonl").exists(),
    reason="workplace copy of MATH-500 (../shared/data) not present",
)
def test_real_math500_loads_completely_and_references_parse():
    bench = get(benchmarks.knobs(name="math500", data_dir=str(SHARED)))
    items = bench.load()
    assert len(items) == 500 and bench.report.skipped == []
    assert all(is_equivalent(i.reference, i.reference) for i in items[:50])
