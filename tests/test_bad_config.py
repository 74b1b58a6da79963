"""Bad configuration through the CLI: one line naming the key, never a traceback (issue 12).

Every case runs `python -m harness.run <overrides>` as its own process, forked from this one
(which has imported the harness once), so the battery takes seconds. A case that got as far as
loading a model would be killed there (HARNESS_FAULT_AT=load) and fail. Exit status 2 is our
`config error: ...`; 1 is Hydra rejecting an override while it composes the config.
"""

from __future__ import annotations

import os
import re
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import harness.run
from harness.config import options
from tests.conftest import write_gsm8k

SMOL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class Result:
    status: int  # exit status; -N when killed by signal N
    stdout: str
    stderr: str


def _child(argv: list[str], out: Path, err: Path) -> None:
    """In the forked child: run the entry point with `argv`, exit with its status."""
    code = 1
    try:
        for fd, path in ((1, out), (2, err)):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - the child's own streams
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        sys.argv = [harness.run.__file__, *argv]  # as `python -m harness.run` sets it
        os.environ["HARNESS_FAULT_AT"] = "load"
        del sys.modules["harness.run"]  # run afresh as __main__, its imports already loaded
        runpy.run_module("harness.run", run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run_cli(cases: list[list[str]], tmp: Path, parallel: int = 4) -> list[Result]:
    """`python -m harness.run *case` for every case, `parallel` forked processes at a time."""
    results: dict[int, Result] = {}
    running: dict[int, int] = {}  # pid -> case index

    def reap() -> None:
        pid, status = os.wait()
        i = running.pop(pid)
        code = os.waitstatus_to_exitcode(status)
        results[i] = Result(code, (tmp / f"{i}.out").read_text(), (tmp / f"{i}.err").read_text())

    for i, argv in enumerate(cases):
        while len(running) >= parallel:
            reap()
        pid = os.fork()
        if pid == 0:
            _child(argv, tmp / f"{i}.out", tmp / f"{i}.err")
        running[pid] = i
    while running:
        reap()
    return [results[i] for i in range(len(cases))]


def rows(*rows: str) -> str:
    return f"configurations=[{', '.join(rows)}]"


# (overrides, exit status, a regex the stderr must match)
CASES: list[tuple[list[str], int, str]] = [
    # unknown option names in config groups: Hydra, listing the options
    (["method=nope"], 1, r"Could not find 'method/nope'.*self_moa"),
    (["benchmark=nope"], 1, r"Could not find 'benchmark/nope'.*gsm8k"),
    (["model=nope"], 1, r"Could not find 'model/nope'.*smollm2"),
    (["engine=nope"], 1, r"Could not find 'engine/nope'.*cpu"),
    (["logger=nope"], 1, r"Could not find 'logger/nope'"),
    (["experiment=nope"], 1, r"Could not find 'experiment/nope'.*smoke"),
    (["launcher=nope"], 1, r"Could not find 'launcher/nope'"),
    (["sweep=nope"], 1, r"Could not find 'sweep/nope'"),
    # names inside a group that pass composition
    (["benchmark.name=nope"], 2, r"benchmark.name='nope'; allowed: .*gsm8k"),
    (["engine.kind=nope"], 2, r"engine.kind='nope'; allowed: openai, replay, vllm"),
    (["method.aggregator=nope"], 2, r"method.aggregator='nope': unknown model 'nope'; available"),
    (["method.model=nope"], 2, r"method.model='nope': unknown model 'nope'"),
    (["model.gguf=nope"], 2, r"model.gguf='nope' is not a known GGUF model"),
    (
        ["model=qwen2-7b-instruct", "model.path=/no/such/dir", "method=single"],
        2,
        r"model.path='/no/such/dir': no such model folder",
    ),  # fmt: skip
    # wrong types and keys: Hydra, naming the key
    (["method.k=abc"], 1, r"method.k=abc"),
    (["method.k=3.5"], 1, r"method.k"),
    (["method.kk=3"], 1, r"method.kk"),
    (["method=single", "method.k=3"], 1, r"Could not override 'method.k'"),
    (["method=self_moa", "method.window=3"], 1, r"Could not override 'method.window'"),
    (["method.shuffle=maybe"], 1, r"method.shuffle"),
    (["benchmark.limit=abc"], 1, r"benchmark.limit"),
    (["seed=abc"], 1, r"seed"),
    (["baseline=maybe"], 1, r"baseline"),
    (["+nope=1"], 2, r"nope is not a config key; top-level keys: model, method"),
    (["+benchmark.splits=dev"], 2, r"benchmark.splits is not a config key; benchmark keys"),
    (["+method.kk=3"], 2, r"method.kk is not a knob of self_moa"),
    (["method.k"], 1, r"method.k"),
    # impossible values: k, window, reserved, layers, keep, mixtures
    (["method.k=0"], 2, r"method.k must be an integer in \[1, 256\] \(got 0\)"),
    (["method.k=-3"], 2, r"method.k must be an integer in \[1, 256\]"),
    (["method.k=100000000000"], 2, r"method.k must be an integer in \[1, 256\]"),
    (["method=self_moa_seq", "method.window=0"], 2, r"method.window must be in \[1, 256\] \(got 0"),
    (["method=self_moa_seq", "method.window=100000"], 2, r"method.window must be in \[1, 256\]"),
    (
        ["method=self_moa_seq", "method.reserved=6"],
        2,
        r"method.reserved must be in \[0, method.window - 1 = 5\]",
    ),
    (["method=self_moa_seq", "method.reserved=-1"], 2, r"method.reserved must be in \[0, "),
    (["method.layers=1"], 2, r"method.layers must be in \[2, 8\]"),
    (["method.layers=1000"], 2, r"method.layers must be in \[2, 8\]"),
    (["method=rank_fuse", "method.keep=0"], 2, r"method.keep must be in \[1, k=6\]"),
    (["method=rank_fuse", "method.keep=7"], 2, r"method.keep must be in \[1, k=6\]"),
    (["method=rank_fuse", "method.rank_max_tokens=0"], 2, r"method.rank_max_tokens must be in"),
    (["method=mixed_moa", "method.mixture=qqxx"], 2, r"letters \['x'\] are not in letters"),
    (["method=mixed_moa", "method.mixture="], 2, r"mixture must hold 1 to 256 letters"),
    (
        ["method=mixed_moa", "method.mixture=" + "q" * 300],
        2,
        r"mixture must hold 1 to 256 .*got 300 letters",
    ),
    (["method=mixed_moa", "method.temperature=0"], 2, r"temperature=0 repeats a model"),
    (["method=mixed_moa", "letters.q=nope"], 2, r"letters.q='nope': unknown model 'nope'"),
    # temperatures, top_p, token caps, context policy
    (["method.temperature=0"], 2, r"greedy samples are identical"),
    (["method.temperature=-0.1"], 2, r"method.temperature must be in \[0, 5.0\]"),
    (["method.temperature=100"], 2, r"method.temperature must be in \[0, 5.0\]"),
    (["method.temperature=nan"], 2, r"method.temperature must be in \[0, 5.0\]"),
    (["method.aggregator_temperature=-1"], 2, r"method.aggregator_temperature must be in"),
    (["method.top_p=0"], 2, r"method.top_p must be in \(0, 1\]"),
    (["method.top_p=1.5"], 2, r"method.top_p must be in \(0, 1\] \(got 1.5\)"),
    (["method.max_tokens=0"], 2, r"method.max_tokens must be in \[1, 131072\]"),
    (["method.max_tokens=1000000000"], 2, r"method.max_tokens must be in \[1, 131072\]"),
    (["method.aggregator_max_tokens=-5"], 2, r"method.aggregator_max_tokens must be in"),
    (
        ["method.max_tokens=5000"],
        2,
        r"method.max_tokens=5000 leaves no room for the prompt in the "
        r"context of smollm2-135m-instruct \(max_model_len=4096\)",
    ),  # fmt: skip
    (["method.aggregator_max_tokens=4096"], 2, r"method.aggregator_max_tokens=4096 leaves no room"),
    (["method=rank_fuse", "method.rank_max_tokens=9000"], 2, r"rank_max_tokens=9000 leaves no"),
    (
        ["engine.kwargs.max_model_len=-1"],
        2,
        r"engine.kwargs.max_model_len \(of smollm2-135m-instruct\) must be",
    ),
    (["+model.engine_kwargs.max_model_len=64"], 2, r"method.max_tokens=512 leaves no room .*=64"),
    (["seed=-1"], 2, r"seed must be in \[0, 4294967295\] \(got -1\)"),
    (["seed=100000000000000000000"], 2, r"seed must be in \[0, 4294967295\]"),
    (["method.context_policy=squeeze"], 2, r"context_policy='squeeze'; allowed: shorten"),
    # benchmark knobs, judge
    (["benchmark.limit=-1"], 2, r"benchmark.limit must be in \[1, 1000000\]"),
    (["benchmark.limit=10000000"], 2, r"benchmark.limit must be in \[1, 1000000\]"),
    (["benchmark.limit=0"], 2, r"benchmark.limit must be in \[1, 1000000\] or null .*got 0"),
    (
        ["benchmark=mt_bench", "benchmark.judge_max_tokens=0"],
        2,
        r"benchmark.judge_max_tokens must be in \[1, 131072\]",
    ),
    (
        ["benchmark=alpaca_eval", "benchmark.judge_max_tokens=100000000"],
        2,
        r"benchmark.judge_max_tokens must be in \[1, ",
    ),
    # a knob of another benchmark (judged, cruxeval): not a key of gsm8k's knobs
    (["benchmark.judge_max_tokens=8"], 1, r"Could not override 'benchmark.judge_max_tokens'"),
    (["benchmark.sandbox=trusted"], 1, r"Could not override 'benchmark.sandbox'"),
    (["+benchmark.sandbox=trusted"], 2, r"benchmark.sandbox is not a config key; .* of gsm8k"),
    (["benchmark=cruxeval", "benchmark.sandbox=loose"], 2, r"benchmark.sandbox='loose'; allowed"),
    (
        ["benchmark=alpaca_eval", "benchmark.judge_max_tokens=4096"],
        2,
        r"benchmark.judge_max_tokens=4096 leaves no room .* qwen2.5-coder-0.5b-instruct",
    ),  # fmt: skip
    ([f"benchmark.judge={SMOL}"], 1, r"Could not override 'benchmark.judge'"),
    ([f"+benchmark.judge={SMOL}"], 2, r"benchmark.judge is not a config key; .* of gsm8k"),
    (
        ["benchmark=alpaca_eval", "benchmark.judge=null"],
        2,
        r"scored by a judge model: set benchmark.judge",
    ),
    (
        ["benchmark=mt_bench", f"benchmark.judge={SMOL}", "method=majority_vote"],
        2,
        r"majority_vote needs extractable answers",
    ),  # fmt: skip
    (["benchmark=alpaca_eval", "benchmark.judge=nope"], 2, r"benchmark.judge='nope': unknown"),
    # logger, phase
    (["logger.mode=sometimes"], 2, r"logger.mode='sometimes'; allowed: offline, online"),
    (["phase=nope"], 2, r"phase='nope'; allowed: all, propose"),
    ([f"phase_model={SMOL}"], 2, r"phase_model is only used with phase=propose"),
    (
        ["phase=propose", "phase_model=gemma-3-270m"],
        2,
        r"phase_model='gemma-3-270m' is not a model of this study",
    ),  # fmt: skip
    # study rows
    ([rows("{name: self_moa, window: 3}")], 2, r"configurations\[0\].window is not a knob"),
    ([rows("{name: nope}")], 2, r"configurations\[0\].name='nope' is not a method"),
    ([rows("{k: 3}")], 2, r"configurations\[0\].name is required"),
    ([rows("{preset: nope}")], 2, r"configurations\[0\].preset='nope' is not a method preset"),
    ([rows("{name: usc, k: many}")], 2, r"configurations\[0\].k: Value 'many'"),
    ([rows("{name: usc, k: 3}", "{name: self_moa, k: 0}")], 2, r"configurations\[1\].k must"),
    (
        [rows("{name: self_moa, k: 3}", "{name: self_moa, k: 3}")],
        2,
        r"two configurations are both labelled 'self_moa\(k=3\)'",
    ),  # fmt: skip
    ([rows("{name: usc, label: a}", "{name: self_moa, label: a}")], 2, r"both labelled 'a'"),
    ([rows("{name: self_moa, model: nope}")], 2, r"configurations\[0\].model='nope': unknown"),
    ([rows("3")], 2, r"configurations\[0\] must be a mapping"),
    ([rows("{preset: usc, window: 3}")], 2, r"configurations\[0\].window is not a knob of usc"),
    (["configurations=self_moa"], 1, r"configurations"),
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    data = write_gsm8k(root / "data")
    return root, [
        f"benchmark.data_dir={data}",
        f"store_dir={root / 'store'}",
        f"hydra.run.dir={root / 'run'}",
        "logger.mode=disabled",
        "model=smollm2-135m-instruct",
    ]


@pytest.fixture(scope="module")
def results(env):
    root, common = env
    out = root / "out"
    out.mkdir()
    # the case's own overrides come last, so that they win over the common ones
    return run_cli([common + case for case, _, _ in CASES], out)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[" ".join(c)[:60] for c, _, _ in CASES])
def test_bad_input_is_one_clear_error(results, env, index):
    case, status, message = CASES[index]
    got = results[index]
    assert "Traceback" not in got.stderr, got.stderr[-3000:]
    assert got.status == status, got.stderr[-3000:]
    assert re.search(message, got.stderr, re.S), got.stderr[-3000:]
    if status == 2:
        assert got.stderr.count("config error:") == 1, got.stderr
    assert not (env[0] / "store").exists() or not any((env[0] / "store").iterdir())


def test_enough_cases():
    assert len(CASES) >= 40


@pytest.fixture(scope="module")
def printed_presets(tmp_path_factory):
    out = tmp_path_factory.mktemp("cfg")
    printed = run_cli([[f"experiment={e}", "--cfg", "job"] for e in PRESETS], out)
    return dict(zip(PRESETS, printed, strict=True))


PRESETS = options("experiment")


@pytest.mark.parametrize("experiment", PRESETS)
def test_cfg_job_prints_every_experiment_preset(printed_presets, experiment):
    got = printed_presets[experiment]
    assert got.status == 0 and "Traceback" not in got.stderr, got.stderr[-3000:]
    assert "configurations:" in got.stdout and "model:" in got.stdout
