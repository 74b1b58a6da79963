"""The README's documented commands, kept true: every `python -m harness.run|agreement` command
of its bash blocks composes and passes every check made before a model loads; the presets table
lists exactly the presets of conf/experiment/; the cheap commands run (the sweep whose rerun the
README prints, with the replay engine, compared line by line; `harness.models list`); the smoke
command runs on the real model (slow)."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import options
from harness.plan import checked, compose

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
COMMAND = re.compile(r"(?:^|&& )(?:\.venv/bin/)?python -m harness\.(run|agreement)\b(.*)$")


def documented_commands() -> list[str]:
    """`python -m harness.run ...` lines of the README's bash blocks (continuations joined,
    comments cut), without placeholders such as `<date>`."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if COMMAND.search(line) and "<" not in line:
                found.append(line)
    return found


def run(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600,
        env=os.environ | {"PYTHONPATH": str(ROOT)} | env,
    )  # fmt: skip


def test_the_readme_documents_commands():
    assert len(documented_commands()) >= 10


@pytest.mark.parametrize("line", documented_commands())
def test_every_documented_command_composes_and_passes_the_checks(line):
    """Its overrides (the first value of a sweep's comma list; Hydra's own keys left to Hydra)
    compose and pass harness.plan.checked: the key names, values, models and contexts."""
    words = shlex.split(COMMAND.search(line).group(2))
    overrides = [w for w in words if not w.startswith("-") and not w.startswith("hydra.")]
    first = [w if "," not in w else w.split(",")[0] for w in overrides]
    checked(compose(*first))


def test_the_presets_table_lists_every_preset_and_only_presets():
    section = README.split("## Presets", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z0-9_]+)` \|", section, re.M)
    assert sorted(rows) == options("experiment")


def test_the_readme_sweep_rerun_prints_the_table_it_shows(tmp_path):
    """The Sweeps section's table: that sweep (replay engine), run twice into one store."""
    section = README.split("## Sweeps", 1)[1].split("\n## ", 1)[0]
    command = re.search(
        r"`(python -m harness\.run -m engine=replay[^`]*)`", section.replace("\n", " ")
    )
    shown = re.search(r"```\n( +point  benchmark.*?)```", section, re.S).group(1).strip()
    words = shlex.split(command.group(1))[1:]  # -m harness.run -m ...
    for n in (1, 2):
        proc = run(*words, "logger.mode=disabled", f"store_dir={tmp_path / 'store'}",
                   f"hydra.sweep.dir={tmp_path / f'sweep{n}'}")  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
    printed = (tmp_path / "sweep2" / "summary.txt").read_text().strip()
    assert [line.rstrip() for line in printed.splitlines()] == [
        line.rstrip() for line in shown.splitlines()
    ]


def test_models_list_runs():
    proc = run("-m", "harness.models", "list")
    assert proc.returncode == 0 and "smollm2-135m-instruct" in proc.stdout


@pytest.mark.slow
def test_the_smoke_command_runs_on_the_real_model(tmp_path):
    line = next(c for c in documented_commands() if "experiment=smoke logger.mode=disabled" in c)
    words = shlex.split(COMMAND.search(line).group(2))
    proc = run("-m", "harness.run", *words, f"store_dir={tmp_path / 'store'}",
               f"hydra.run.dir={tmp_path / 'run'}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "oracle (best proposal)" in proc.stdout and "run directory:" in proc.stdout
