"""The architecture as tests: the layers hold, method names stay in methods/, modules stay small.

Layers: `lint-imports` (import-linter, pinned in the dev extra) checks the contracts of
pyproject.toml's [tool.importlinter]: entry points > pipeline > parts > infrastructure > leaves,
nothing imports upward, no import cycles; every import counts (grimp's graph: function-local and
TYPE_CHECKING imports included). Method names: the core asks a method (its class attributes and
hooks), it never tests for one by name, so no method's name appears in the code of harness/
outside harness/methods/ (docstrings, comments, configs and docs aside).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from harness import methods

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")  # the venv's, like pytest's python
MAX_LINES = 400


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the harness package under `root`, with root's pyproject.toml."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
    )


def test_the_layers_hold_and_nothing_cycles():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_an_upward_import_breaks_the_layers(tmp_path):
    """The contract can fail: a leaf (records) importing an entry point inside a function."""
    shutil.copytree(ROOT / "harness", tmp_path / "harness", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    records = tmp_path / "harness" / "records.py"
    records.write_text(records.read_text() + "\n\ndef upward():\n    from harness import run\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0, done.stdout
    assert "harness.records is not allowed to import harness.run" in done.stdout


# ---------------------------------------------------------------- method names in the core ----


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def method_names_in(source: str, names: list[str]) -> list[tuple[int, str]]:
    """(line, what) for each method name in `source`'s code: an identifier (a name, attribute,
    argument, keyword, function, class or imported module) equal to one, or a string (not a
    docstring) equal to one or, for names that are no English word, holding one as a word."""
    words = re.compile(r"\b(" + "|".join(n for n in names if "_" in n or n == "usc") + r")\b")
    tree = ast.parse(source)
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        idents: list[str] = []
        if isinstance(node, ast.Name):
            idents = [node.id]
        elif isinstance(node, ast.Attribute):
            idents = [node.attr]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            idents = [node.name]
        elif isinstance(node, ast.arg):
            idents = [node.arg]
        elif isinstance(node, ast.keyword) and node.arg:
            idents = [node.arg]
        elif isinstance(node, ast.alias):
            idents = [*node.name.split("."), node.asname or ""]
        elif isinstance(node, ast.ImportFrom) and node.module:
            idents = node.module.split(".")
        found += [(node.lineno, f"identifier {n}") for n in idents if n in names]
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if node.value in names or words.search(node.value):
                found.append((node.lineno, f"string {node.value[:70]!r}"))
    return found


NAMES = sorted(methods.REGISTRY)


def test_the_registry_names_every_method():
    expected = {"single", "majority_vote", "self_moa", "self_moa_seq", "mixed_moa", "usc"}
    assert expected | {"rank_fuse"} <= set(NAMES)


def test_the_scan_finds_a_method_name_in_core_code():
    """The check below can fail: these are the leaks it is there to catch."""
    leaks = [
        'if c.method.name == "rank_fuse":\n    cap = 1\n',
        'if "majority_vote" in names:\n    raise ValueError("no")\n',
        'baseline = knobs("single", model=m)\n',
        'log.warning(f"{n} hit the cap (rank_fuse\'s ranking)")\n',
        "from harness.methods.usc import USC\n",
        "def self_moa_seq(job):\n    pass\n",
    ]
    for source in leaks:
        assert method_names_in(source, NAMES), source
    clean = '"""Aggregates like self_moa."""\n# usc, rank_fuse\nx = "a single model"\n'
    assert method_names_in(clean, NAMES) == []


def test_no_method_name_outside_the_methods_package():
    found = []
    for path in sorted((ROOT / "harness").rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[1] == "methods":
            continue
        found += [
            f"{rel}:{line}: {what}" for line, what in method_names_in(path.read_text(), NAMES)
        ]
    assert found == [], "method names outside harness/methods/ (ask the method):\n" + "\n".join(
        found
    )


def test_no_module_over_400_lines():
    sizes = {
        p.relative_to(ROOT): len(p.read_text().splitlines()) for p in ROOT.glob("harness/**/*.py")
    }
    over = {str(p): n for p, n in sizes.items() if n > MAX_LINES}
    assert over == {}, f"modules over {MAX_LINES} lines: {over}"
    assert len(sizes) > 50  # the whole package was read
