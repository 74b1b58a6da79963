import json
from pathlib import Path

import pytest

from harness import benchmarks
from harness.benchmarks import get
from harness.benchmarks.cruxeval import CruxItem, extract_answer
from harness.sandbox import Limits

# Our own functions in CRUXEval's format (not taken from the dataset).
RECORDS = [
    {"code": "def f(s):\n    return s[::-1]", "input": "'abc'", "output": "'cba'", "id": "a"},
    {
        "code": "def f(xs, k):\n    return [x * k for x in xs]",
        "input": "[1, 2], 3",
        "output": "[3, 6]",
    },
    {
        "code": "def f(d):\n    return sorted(d.items())",
        "input": "{'b': 1, 'a': 2}",
        "output": "[('a', 2), ('b', 1)]",
    },  # noqa: E501
]


@pytest.fixture
def crux_dir(tmp_path: Path) -> Path:
    d = tmp_path / "cruxeval"
    d.mkdir()
    lines = [json.dumps(r) for r in RECORDS[:2]] + [
        "{not json",
        json.dumps({"code": "def g(x):\n    return x", "input": "1", "output": "1"}),
        json.dumps({"code": "def f(x):\n    return x", "input": "1, (", "output": "1"}),
        json.dumps({"code": "def f(x):\n    return x", "input": "1", "output": "[1,"}),
        json.dumps(["a list"]),
        "",
        json.dumps(RECORDS[2]),
    ]
    (d / "cruxeval.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def bench(data_dir, limit=None):
    return get(benchmarks.knobs(name="cruxeval", data_dir=str(data_dir), limit=limit))


def test_loader_skips_and_reports_malformed_records_with_file_and_line(crux_dir):
    b = bench(crux_dir)
    items = b.load()
    assert [i.id for i in items] == ["cruxeval/test/0", "cruxeval/test/1", "cruxeval/test/8"]
    assert items[1].input == "[1, 2], 3" and items[1].reference == "[3, 6]"
    path = crux_dir / "cruxeval" / "cruxeval.jsonl"
    assert b.report.skipped == [
        f"{path}:3: not JSON (Expecting property name enclosed in double quotes)",
        f"{path}:4: 'code' does not define a function f",
        f"{path}:5: 'input' is not a Python argument list",
        f"{path}:6: 'output' is not a Python expression",
        f"{path}:7: not a JSON object",
    ]
    assert b.report.loaded == 3


def test_loader_reads_the_shared_copy_when_present():
    data = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (data / "cruxeval" / "cruxeval.jsonl").exists():
        pytest.skip("no shared CRUXEval copy on this machine")
    b = bench(data, limit=None)
    assert len(b.load()) == 800 and b.report.skipped == []


def test_prompt_shows_the_function_and_the_call(crux_dir):
    b = bench(crux_dir)
    content = b.messages(b.load()[1])[0]["content"]
    assert RECORDS[1]["code"] in content and "f([1, 2], 3)" in content
    assert "[ANSWER]" in content and "[/ANSWER]" in content


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[ANSWER]'cba'[/ANSWER]", "'cba'"),
        ("Reasoning...\n[ANSWER]\n[3, 6]\n[/ANSWER]", "[3, 6]"),
        ("[ANSWER]assert f('abc') == 'cba'[/ANSWER]", "'cba'"),
        ("[ANSWER]f('abc') == 'cba'[/ANSWER]", "'cba'"),
        ("[ANSWER]\n```python\n{'a': 1}\n```\n[/ANSWER]", "{'a': 1}"),
        ("[ANSWER]1[/ANSWER] on second thought [ANSWER]2[/ANSWER]", "2"),  # the last one
        ("[ANSWER]2[/ANSWER] then [ANSWER]not python at all[/ANSWER]", "2"),  # last valid
        ("[ANSWER] (1, 'a')", "(1, 'a')"),  # unclosed tag at the end
        ("```python\nassert f([1, 2], 3) == [3, 6]\n```", "[3, 6]"),
        ("assert f(1) == 2\nassert f(1) == 3", "3"),
        ("assert [3, 6] == f([1, 2], 3)", "[3, 6]"),
        ("The answer:\n```python\n'cba'\n```", "'cba'"),
        ("```python\nx = 1\nprint(x)\n```", None),  # statements, not a value
        ("So the output is 'cba'.", "'cba'"),
        ("f returns `[3, 6]`.", "[3, 6]"),
        ("Output: True", "True"),
        ("[1, 2]", "[1, 2]"),  # a bare value is the whole response
        ("  'cba'\n", "'cba'"),
        ("f('abc')", None),  # ... unless it restates the call
        ("[ANSWER]f('abc')[/ANSWER]", None),  # the call restated is no answer
        ("I am not sure what this does.", None),
        ("", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.fixture
def items_and_bench(crux_dir):
    b = bench(crux_dir)
    return b.load(), b


@pytest.mark.parametrize(
    "index, answer, score",
    [
        (0, "'cba'", 1.0),
        (0, '"cba"', 1.0),  # any expression with the right value
        (0, "'abc'", 0.0),
        (1, "[3, 6]", 1.0),
        (1, "[3, 6, 9]", 0.0),
        (2, "[('a', 2), ('b', 1)]", 1.0),
        (2, "[['a', 2], ['b', 1]]", 0.0),  # lists are not tuples
        (0, "f('abc')", 0.0),  # f is not in the answer's namespace
        (0, "'abc'[::-1]", 1.0),  # not a literal: evaluated in a sandbox run of its own
        (1, "[3, 6.0]", 1.0),  # == on built-in values, as CRUXEval's own check
        (1, "(3, 6)", 0.0),
        (0, "not python (", 0.0),
        (0, None, 0.0),
    ],
)
def test_score_runs_the_function_in_the_sandbox(items_and_bench, index, answer, score):
    items, b = items_and_bench
    assert b.score(items[index], answer) == score


def test_identical_answers_are_graded_once(items_and_bench):
    items, b = items_and_bench
    assert [b.score(items[0], "'cba'") for _ in range(3)] == [1.0] * 3
    assert b.score_outcomes == {"ok": 1}


def test_sandbox_failures_score_zero_and_are_counted_apart(items_and_bench, caplog):
    items, b = items_and_bench
    b.limits = Limits(timeout_s=1.0, memory_mb=256)
    assert b.score(items[0], "__import__('time').sleep(30)") == 0.0
    assert b.score(items[0], "'x' * 10**10") == 0.0
    assert b.score(items[0], "'abc'") == 0.0
    assert b.score_outcomes == {"timeout": 1, "memory": 1, "error": 1}
    assert "sandbox timeout on cruxeval/test/0" in caplog.text


def test_a_function_that_fails_is_counted_once_per_answer(tmp_path):
    d = tmp_path / "cruxeval"
    d.mkdir()
    looping = {"code": "def f(x):\n    while True:\n        pass", "input": "1", "output": "1"}
    (d / "cruxeval.jsonl").write_text(json.dumps(looping) + "\n")
    b = bench(tmp_path)
    b.limits = Limits(timeout_s=1.0)
    item = b.load()[0]
    assert b.score(item, "1") == 0.0 and b.score(item, "2") == 0.0
    assert b.score_outcomes == {"timeout": 2}


def test_nan_and_inf_grade_like_any_value(tmp_path):
    d = tmp_path / "cruxeval"
    d.mkdir()
    code = "def f(x):\n    return [x, float('nan'), -float('inf'), {1, 2}, frozenset()]"
    (d / "cruxeval.jsonl").write_text(json.dumps({"code": code, "input": "2", "output": "0"}))
    b = bench(tmp_path)
    item = b.load()[0]
    assert b.score(item, "[2, float('nan'), float('-inf'), {2, 1}, frozenset()]") == 1.0
    assert b.score(item, "[2, 0.0, float('-inf'), {2, 1}, frozenset()]") == 0.0


def test_trusted_mode_grades_without_namespaces(crux_dir):
    b = get(benchmarks.knobs(name="cruxeval", data_dir=str(crux_dir), sandbox="trusted"))
    items = b.load()
    assert b.score(items[0], "'cba'") == 1.0 and b.score(items[0], "'abc'[::-1]") == 1.0
    assert b.score(items[0], "'abc'") == 0.0


@pytest.mark.slow
def test_every_gold_output_of_the_shared_copy_grades_correct():
    data = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (data / "cruxeval" / "cruxeval.jsonl").exists():
        pytest.skip("no shared CRUXEval copy on this machine")
    b = bench(data)
    items = b.load()
    wrong = [i.id for i in items if b.score(i, i.reference) != 1.0]
    assert wrong == [] and b.score_outcomes == {"ok": 800}


def test_items_carry_code_and_input(items_and_bench):
    items, _ = items_and_bench
    assert isinstance(items[0], CruxItem) and items[0].code == RECORDS[0]["code"]
