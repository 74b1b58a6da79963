"""HARNESS_* environment knobs: empty means unset, nonsense is an error naming the variable."""

import logging

import pytest

from harness.config import CONF_DIR
from harness.environment import check_environment, progress_seconds
from harness.errors import ConfigError, PathError
from harness.plan import checked_run, compose


@pytest.fixture
def env(monkeypatch):
    for name in (
        "HARNESS_STORE_DIR",
        "HARNESS_DATA_DIR",
        "HARNESS_CACHE_DIR",
        "HARNESS_PROGRESS_S",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_store_dir_variable_is_unset_so_the_default_applies(env, value):
    env.setenv("HARNESS_STORE_DIR", value)
    cfg = compose()  # interpolations are resolved lazily: checking afterwards is in time
    assert check_environment() == {}
    assert checked_run(cfg).store_dir == str(CONF_DIR.parent / "runs" / "store")


@pytest.mark.parametrize("name", ["HARNESS_DATA_DIR", "HARNESS_CACHE_DIR", "HARNESS_PROGRESS_S"])
def test_every_empty_knob_is_unset(env, name):
    env.setenv(name, "")
    assert check_environment() == {}


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf", "1e999", "30s"])
def test_a_nonsense_progress_interval_names_the_variable(env, value):
    env.setenv("HARNESS_PROGRESS_S", value)
    with pytest.raises(ConfigError, match=f"HARNESS_PROGRESS_S={value!r} must be a number"):
        check_environment()


def test_progress_interval_default_and_value(env):
    assert progress_seconds() == 30.0
    env.setenv("HARNESS_PROGRESS_S", "2.5")
    assert progress_seconds() == 2.5 and check_environment() == {"HARNESS_PROGRESS_S": "2.5"}


def test_a_missing_data_dir_is_rejected(env, tmp_path):
    env.setenv("HARNESS_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="HARNESS_DATA_DIR=.*nowhere' does not exist"):
        check_environment()


@pytest.mark.parametrize("name", ["HARNESS_STORE_DIR", "HARNESS_DATA_DIR", "HARNESS_CACHE_DIR"])
def test_a_directory_knob_naming_a_file_is_rejected(env, tmp_path, name):
    (tmp_path / "file").write_text("x")
    env.setenv(name, str(tmp_path / "file"))
    with pytest.raises(ConfigError, match=f"{name}=.*is a file, not a directory"):
        check_environment()


def test_a_directory_that_cannot_be_created_is_rejected(env, tmp_path):
    (tmp_path / "file").write_text("x")
    env.setenv("HARNESS_STORE_DIR", str(tmp_path / "file" / "store"))
    with pytest.raises(ConfigError, match="HARNESS_STORE_DIR=.*cannot be created"):
        check_environment()


def test_surrounding_spaces_are_rejected(env, tmp_path):
    env.setenv("HARNESS_STORE_DIR", f" {tmp_path} ")
    with pytest.raises(ConfigError, match="HARNESS_STORE_DIR=.*leading or trailing spaces"):
        check_environment()


def test_an_unknown_harness_variable_is_warned_with_the_close_name(env, caplog):
    env.setenv("HARNESS_STORE_DIRR", "x")
    with caplog.at_level(logging.WARNING):
        check_environment()
    assert "HARNESS_STORE_DIRR ignored (did you mean HARNESS_STORE_DIR?)" in caplog.text


def test_a_cache_dir_that_is_a_file_is_a_cache_path_error(env, tmp_path):
    from harness.models import cache_dir

    (tmp_path / "file").write_text("x")
    env.setenv("HARNESS_CACHE_DIR", str(tmp_path / "file"))
    with pytest.raises(PathError, match="cache directory") as e:
        cache_dir()
    assert e.value.which == "cache"
    env.setenv("HARNESS_CACHE_DIR", "")
    assert cache_dir().name == "harness"


def test_an_unwritable_cache_is_a_cache_path_error(env, tmp_path):
    from harness.models import prepare

    (tmp_path / "file").write_text("x")
    env.setenv("HARNESS_CACHE_DIR", str(tmp_path / "file" / "cache"))
    with pytest.raises(PathError, match="cache directory .* while preparing smollm2"):
        prepare("smollm2-135m-instruct")
