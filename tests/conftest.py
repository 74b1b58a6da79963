"""Shared fixtures: config composition, a GSM8K-style data dir, a fake engine for pure logic."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import benchmarks
from harness.benchmarks.judge import PAIRWISE_REQUEST
from harness.config import EngineConfig
from harness.engines import Completion, Output, Sampling, too_long
from harness.generate import Generator, ModelSlot
from harness.plan import compose
from harness.records import Generation, Record
from harness.study import execute

# Our own problems in GSM8K's format (not taken from the dataset).
PROBLEMS = [
    ("Tom has 3 boxes with 4 pens in each. How many pens does he have?", "3 * 4 = 12\n#### 12"),
    ("A shop sells 15 cakes on Monday and 10 on Tuesday. How many in total?", "15+10=25\n#### 25"),
    ("Ana had 1,200 dollars and spent 450. How much is left?", "1200-450=750\n#### 750"),
]


def write_gsm8k(root: Path) -> Path:
    """`root/gsm8k/test.jsonl` holding PROBLEMS; returns `root` (a benchmark.data_dir)."""
    (root / "gsm8k").mkdir(parents=True)
    (root / "gsm8k" / "test.jsonl").write_text(
        "".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in PROBLEMS)
    )
    return root


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return write_gsm8k(tmp_path / "data")


@pytest.fixture
def bench_cfg(data_dir: Path) -> benchmarks.Knobs:
    return benchmarks.knobs(name="gsm8k", data_dir=str(data_dir), limit=None)


compose_config = compose

# slow tests that submit jobs to a real SLURM cluster (.ci/run starts one here)
NO_SLURM = "no SLURM here (sbatch absent): start one with scripts/slurm_start.sh"
NEEDS_SLURM = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("sbatch") is None, reason=NO_SLURM),
]

USR1_TEST = "test_usr1_near_the_time_limit_requeues_the_job_which_then_finishes"


@pytest.fixture(scope="session")
def usr1_job(tmp_path_factory) -> tuple[str, Path]:
    """tests/test_slurm.py's USR1 job: --time=3 min, USR1 60 s before (SLURM may send it up to a
    minute early), the fake engine slow after its proposals."""
    from tests.test_slurm import fake_env, submit

    tmp = tmp_path_factory.mktemp("usr1")
    run_dir = tmp / "run"
    job = submit(
        run_dir, tmp / "store", write_gsm8k(tmp / "data"),
        options=("--mem=2G", "--time=00:03:00", "--signal=B:USR1@60"),
        env=fake_env(tmp, RUN_DIR=str(run_dir), FAKE_DELAY_S="600"),
    )  # fmt: skip
    return job, run_dir


@pytest.fixture(scope="session", autouse=True)
def slurm_waits_from_the_start(request):
    """Submit the USR1 job as the session starts when its test is selected and SLURM answers: its
    three minutes of waiting for the time limit overlap the whole suite (CI time). The job uses
    no model and one of the cluster's 8 advertised CPUs."""
    selected = {item.originalname for item in request.session.items}
    if USR1_TEST not in selected or shutil.which("sinfo") is None:
        return
    answer = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if answer.returncode == 0 and answer.stdout.strip():  # else test_slurm's `cluster` says why
        request.getfixturevalue("usr1_job")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say loudly when the SLURM tests were skipped, and how to run them."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if NO_SLURM in str(r.longrepr)]
    if skipped:
        terminalreporter.write_sep(
            "!", f"{len(skipped)} SLURM TESTS SKIPPED: no SLURM here", red=True
        )
        terminalreporter.write_line(
            "run them with a one-node cluster on this machine (root; installs SLURM in seconds):\n"
            "    scripts/slurm_start.sh && .venv/bin/python -m pytest tests/test_slurm.py "
            "tests/test_slurm_serve.py; scripts/slurm_stop.sh\n"
            "(.ci/run does this for the whole suite)"
        )


def fake_slot(models: dict, factory) -> ModelSlot:
    """A model slot whose engines come from `factory` (fake engines)."""
    return ModelSlot(models, EngineConfig(name="fake"), factory=factory)


def run_execute(confs, items, bench, slot, store, seed=0, judge=None):
    """The study through the core, as JSON records (what records.jsonl holds) and stage stats."""
    gen = Generator(slot, store, seed)
    records = execute(confs, items, bench, gen, judge)
    return [json.loads(json.dumps(r.to_json())) for r in records], gen.stages


def typed(records: list[dict]) -> list[Record]:
    return [Record.from_json(r) for r in records]


def generation(key: str, text: str) -> Generation:
    """A stored generation with only its key and text mattering."""
    return Generation(key, "model", "propose", 0, text, 1, "stop", 1)


class FakeEngine:
    """Answers '#### <seed + j>' for sample j; records every call. Stands in for VllmEngine.

    Judge prompts get fixed verdicts: pairwise '1', a rating of [[len(conversation)]].
    """

    def __init__(self, model_name: str, calls: list, max_prompt_chars: int = 10**9):
        self.model_name, self.calls, self.load_s = model_name, calls, 0.5
        self.max_prompt_chars = max_prompt_chars
        self.closed = False

    def chat(self, conversations: list, params: list[Sampling]) -> list[Output]:
        self.calls.append((self.model_name, conversations, params))
        outs = []
        for conv, p in zip(conversations, params, strict=True):
            chars = sum(len(m["content"]) for m in conv)
            if chars > self.max_prompt_chars:
                outs.append(too_long(chars, self.max_prompt_chars))
                continue
            last = conv[-1]["content"]
            if "most consistent" in last:  # a USC selection prompt
                texts = ["The most consistent response is Response 2."] * p.n
            elif PAIRWISE_REQUEST in last:  # always prefers the first output shown
                texts = ["1"] * p.n
            elif "[[N]]" in last:  # rates by the length of the conversation
                texts = [f"[[{min(10, len(conv))}]] Reasonable."] * p.n
            else:
                texts = [f"{'reasoning ' * 10}#### {(p.seed or 0) % 100 + j}" for j in range(p.n)]
            outs.append(Output(chars, tuple(Completion(t, 5, "stop") for t in texts)))
        return outs

    def close(self) -> None:
        self.closed = True
