"""The real Hydra configs compose, convert to typed dataclasses, and reject impossible values."""

import subprocess
import sys

import pytest

from harness.config import ConfigError, RunConfig, options, to_run_config
from tests.conftest import compose_config


def test_default_config_is_the_default_study():
    run = to_run_config(compose_config())
    assert isinstance(run, RunConfig)
    assert run.method.name == "self_moa" and run.method.k == 4
    assert run.benchmark.name == "gsm8k" and run.benchmark.limit >= 20
    assert run.engine.name == "cpu" and run.logger.mode in ("offline", "disabled")
    assert run.baseline is True
    assert run.engine.kwargs["kv_cache_memory_bytes"] > 0  # CPU KV cache is bounded


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_preset_composes(experiment):
    to_run_config(compose_config(f"experiment={experiment}"))


@pytest.mark.parametrize("model", options("model"))
def test_every_model_config_is_valid(model):
    run = to_run_config(compose_config(f"model={model}", "method=single"))
    assert run.model.name == model


def test_aggregator_model_is_loaded_by_name():
    run = to_run_config(
        compose_config(
            "model=smollm2-135m-instruct", "method.aggregator=qwen2.5-coder-0.5b-instruct"
        )
    )
    assert set(run.models) == {"smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct"}


@pytest.mark.parametrize(
    "override, message",
    [
        ("method.k=0", "method.k must be an integer >= 1"),
        ("benchmark.limit=-1", "benchmark.limit must be >= 0"),
        ("method.temperature=-0.1", "method.temperature must be in"),
        ("method.top_p=0", r"method.top_p must be in \(0, 1\]"),
        ("method.max_tokens=0", "method.max_tokens must be >= 1"),
        ("method.aggregator=nope", "unknown model 'nope'; available: .*smollm2-135m-instruct"),
        ("method.temperature=0", "greedy samples are identical"),
        ("logger.mode=sometimes", "logger.mode='sometimes'; allowed: offline, online, disabled"),
        ("model.path=/no/such/folder", "set exactly one of model.path"),
        ("model.gguf=nope", "model.gguf='nope' is not a known GGUF model"),
        ("method=mixed_moa", None),
        ("method.context_policy=squeeze", "method.context_policy='squeeze'; allowed: shorten"),
        ("method.layers=1", "method.layers must be >= 2"),
        ("method.reserved=6", "need 0 <= reserved < window"),
        ("method.mixture=qq", "method.mixture is only used by mixed_moa"),
    ],
)
def test_impossible_values_name_the_key(override, message):
    if message is None:  # a valid override in this list, as a control
        to_run_config(compose_config(override))
        return
    with pytest.raises(ConfigError, match=message):
        to_run_config(compose_config(override))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["method=mixed_moa", "method.mixture=qqxx"], r"letters \['x'\] are not in letters"),
        (["method=mixed_moa", "method.mixture=null"], "mixture is required for mixed_moa"),
        (["method=majority_vote", "method.aggregator=smollm2-135m-instruct"], "not used by"),
        (["method=usc", "method.model=nope"], "unknown model 'nope'"),
    ],
)
def test_impossible_method_combinations(overrides, message):
    with pytest.raises(ConfigError, match=message):
        to_run_config(compose_config(*overrides))


def test_study_preset_loads_every_model_it_names():
    run = to_run_config(compose_config("experiment=mixtures_cpu"))
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


def test_missing_local_model_folder_is_an_error():
    cfg = compose_config("model=qwen2-7b-instruct", "model.path=/no/such/folder", "method=single")
    with pytest.raises(ConfigError, match="no such model folder"):
        to_run_config(cfg)


def test_single_with_k_above_one_is_rejected():
    with pytest.raises(ConfigError, match="method.k must be 1 for method=single"):
        to_run_config(compose_config("method=single", "method.k=3"))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.run", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_unknown_method_fails_at_once_listing_methods():
    proc = run_cli("method=nope")
    assert proc.returncode != 0
    assert "Could not find 'method/nope'" in proc.stderr
    assert "self_moa" in proc.stderr and "single" in proc.stderr


def test_cli_impossible_value_exits_2_before_loading_a_model():
    proc = run_cli("method.k=0")
    assert proc.returncode == 2
    assert "config error: method.k must be an integer >= 1 (got 0)" in proc.stderr
    assert "loading" not in proc.stderr
