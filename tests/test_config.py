"""The real Hydra configs compose, convert to typed dataclasses, and reject impossible values."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import ConfigError, RunConfig, options
from harness.plan import checked_run
from tests.conftest import compose_config


def test_default_config_is_the_default_study():
    run = checked_run(compose_config())
    assert isinstance(run, RunConfig)
    assert run.method.name == "self_moa" and run.method.k == 4
    assert run.benchmark.name == "gsm8k" and run.benchmark.limit >= 20
    assert run.engine.name == "cpu" and run.logger.mode in ("offline", "disabled")
    assert run.baseline is True
    assert run.engine.kwargs["kv_cache_memory_bytes"] > 0  # CPU KV cache is bounded


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_preset_composes(experiment):
    checked_run(compose_config(f"experiment={experiment}"))


@pytest.mark.parametrize("model", options("model"))
def test_every_model_config_is_valid(model):
    run = checked_run(compose_config(f"model={model}", "method=single"))
    assert run.model.name == model


def test_aggregator_model_is_loaded_by_name():
    run = checked_run(
        compose_config(
            "model=smollm2-135m-instruct", "method.aggregator=qwen2.5-coder-0.5b-instruct"
        )
    )
    assert set(run.models) == {"smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct"}


@pytest.mark.parametrize(
    "override, message",
    [
        ("method.k=0", r"method.k must be an integer in \[1, 256\] \(got 0\)"),
        ("method.k=100000000000", r"method.k must be an integer in \[1, 256\]"),
        ("benchmark.limit=-1", r"benchmark.limit must be in \[1, 1000000\]"),
        ("method.temperature=-0.1", "method.temperature must be in"),
        ("method.top_p=0", r"method.top_p must be in \(0, 1\]"),
        ("method.max_tokens=0", r"method.max_tokens must be in \[1, 131072\]"),
        ("method.aggregator_max_tokens=10000000", "method.aggregator_max_tokens must be in"),
        ("method.aggregator=nope", "unknown model 'nope'; available: .*smollm2-135m-instruct"),
        ("method.temperature=0", "greedy samples are identical"),
        ("logger.mode=sometimes", "logger.mode='sometimes'; allowed: offline, online, disabled"),
        ("model.path=/no/such/folder", "set exactly one of model.path"),
        ("model.gguf=nope", "model.gguf='nope' is not a known GGUF model"),
        ("method=mixed_moa", None),
        ("method.context_policy=squeeze", "method.context_policy='squeeze'; allowed: shorten"),
        ("method.prompt=polite", "method.prompt='polite'; allowed: moa, critical"),
        ("method.layers=1", r"method.layers must be in \[2, 8\]"),
        ("method.layers=1000", r"method.layers must be in \[2, 8\]"),
    ],
)
def test_impossible_values_name_the_key(override, message):
    if message is None:  # a valid override in this list, as a control
        checked_run(compose_config(override))
        return
    with pytest.raises(ConfigError, match=message):
        checked_run(compose_config(override))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["method=mixed_moa", "method.mixture=qqxx"], r"letters \['x'\] are not in letters"),
        (["method=mixed_moa", "method.mixture="], "mixture must hold 1 to 256 letters"),
        (["method=usc", "method.model=nope"], "unknown model 'nope'"),
        (["method=self_moa_seq", "method.reserved=6"], r"method.reserved must be in \[0, "),
        (["method=self_moa_seq", "method.window=100000"], r"method.window must be in \[1, 256\]"),
    ],
)
def test_impossible_method_combinations(overrides, message):
    with pytest.raises(ConfigError, match=message):
        checked_run(compose_config(*overrides))


def test_study_preset_loads_every_model_it_names():
    run = checked_run(compose_config("experiment=mixtures_cpu"))
    assert len(run.configurations) >= 10
    assert set(run.models) == {
        "qwen2.5-coder-0.5b-instruct",
        "smollm2-135m-instruct",
        "gemma-3-270m",
    }
    names = {m.name for m in run.configurations}
    assert {"self_moa", "mixed_moa", "self_moa_seq", "usc", "majority_vote"} <= names


def test_wrongly_typed_or_misspelt_keys_fail_while_composing():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="method.k=abc"):
        compose_config("method.k=abc")
    with pytest.raises(ConfigCompositionException, match="method.kk"):
        compose_config("method.kk=3")


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["method=single", "method.k=3"], "method.k"),  # single has no k: it is one answer
        (["method=self_moa", "method.mixture=qq"], "method.mixture"),
        (["method=self_moa", "method.reserved=2"], "method.reserved"),
        (["method=majority_vote", "method.aggregator=smollm2-135m-instruct"], "method.aggregator"),
    ],
)
def test_a_knob_of_another_method_fails_while_composing(overrides, key):
    """Each method's knobs are its own typed schema: another method's knob is not a key."""
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match=f"Could not override '{key}'"):
        compose_config(*overrides)


@pytest.mark.parametrize(
    "row, message",
    [
        (
            {"name": "self_moa", "window": 3},
            r"configurations\[0\].window is not a knob of self_moa",
        ),
        ({"name": "nope"}, r"configurations\[0\].name='nope' is not a method; allowed: single"),
        ({"k": 3}, r"configurations\[0\].name is required"),
        ({"preset": "nope"}, r"configurations\[0\].preset='nope' is not a method preset"),
        ({"name": "usc", "k": "many"}, r"configurations\[0\].k: Value 'many'"),
    ],
)
def test_study_rows_name_their_bad_knob(row, message):
    with pytest.raises(ConfigError, match=message):
        row = ", ".join(f"{k}: {v}" for k, v in row.items())
        checked_run(compose_config(f"configurations=[{{{row}}}]"))


def test_study_row_can_start_from_a_method_preset():
    run = checked_run(compose_config("configurations=[{preset: usc, k: 3}]"))
    (usc,) = run.configurations
    assert (usc.name, usc.k, usc.aggregator_max_tokens) == ("usc", 3, 64)


def test_missing_local_model_folder_is_an_error():
    cfg = compose_config("model=qwen2-7b-instruct", "model.path=/no/such/folder", "method=single")
    with pytest.raises(ConfigError, match="no such model folder"):
        checked_run(cfg)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.run", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_unknown_method_fails_at_once_listing_methods():
    proc = run_cli("method=nope")
    assert proc.returncode != 0
    assert "Could not find 'method/nope'" in proc.stderr
    assert "self_moa" in proc.stderr and "single" in proc.stderr


def run_guarded(*args: str) -> subprocess.CompletedProcess:
    """`harness.run` through tests/no_engine.py: constructing an engine exits ENGINE_EXIT."""
    root = Path(__file__).resolve().parent.parent
    return subprocess.run(
        [sys.executable, "tests/no_engine.py", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        env=os.environ | {"PYTHONPATH": str(root)},
    )


def test_cli_impossible_value_exits_2_before_loading_a_model():
    proc = run_guarded("method.k=0")
    assert proc.returncode == 2, proc.stderr[-2000:]  # ENGINE_EXIT (97) had an engine been made
    assert "config error: method.k must be an integer in [1, 256] (got 0)" in proc.stderr
    assert "ENGINE CONSTRUCTED" not in proc.stderr


def test_the_no_engine_guard_fires_when_a_run_constructs_an_engine(tmp_path, data_dir):
    """The guard of the test above can fail: a valid run (the replay engine) is stopped by it."""
    from tests.no_engine import ENGINE_EXIT

    proc = run_guarded(
        "engine=replay", "benchmark.limit=1", "logger.mode=disabled",
        f"benchmark.data_dir={data_dir}",
        f"store_dir={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert proc.returncode == ENGINE_EXIT and "ENGINE CONSTRUCTED" in proc.stderr


def test_the_schema_imports_nothing_of_the_harness_above_its_leaves():
    """harness.config is a pure schema: methods, engines and the plan import it, not the reverse."""
    code = (
        "import sys, harness.config; "
        "print(sorted(m for m in sys.modules if m.startswith('harness.')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "['harness.config', 'harness.errors', 'harness.paths']"
