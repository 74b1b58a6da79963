"""The paper presets hold the paper's protocol: its mixtures, k, temperatures and token caps."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.config import options
from harness.plan import checked_run, compose, configurations
from tests.test_sweeps import hydra_compose

ROOT = Path(__file__).resolve().parent.parent
PAPER = [p for p in options("experiment") if p.startswith("paper_")]
TABLE3_MIXTURES = (
    "iimmdd imdddd iiiimd immmmd iimmmm iiimmm iiiimm iidddd iiiddd iiiidd mmdddd mmmddd mmmmdd"
).split()
QWEN, MATH, CODER = "qwen2-7b-instruct", "qwen2-math-7b-instruct", "deepseek-coder-v2-lite-instruct"
CPU = {QWEN: "qwen2.5-coder-0.5b-instruct", MATH: "smollm2-135m-instruct", CODER: "gemma-3-270m"}


def study(preset: str, *overrides: str):
    run = checked_run(compose(f"experiment={preset}", *overrides))
    return run, configurations(run)


def ensembles(confs):
    return [c for c in confs if c.aggregator is not None]


def assert_paper_protocol(confs, max_tokens=2048):
    """k = 6 proposals at T = 0.7, aggregator at T = 0.7, the MoA prompt in sample order."""
    for c in ensembles(confs):
        k = c.knobs
        assert sum(n for _, n in c.proposers) == 6, c.label
        assert k.temperature == 0.7 and k.aggregator_temperature == 0.7, c.label
        assert k.max_tokens == k.aggregator_max_tokens == max_tokens, c.label
        assert k.prompt == "moa" and k.shuffle is False, c.label


def test_paper_presets_exist():
    assert {"paper_table3", "paper_table3_cpu", "paper_table7", "paper_seq_scaling"} <= set(PAPER)
    assert "paper_alpaca_eval" in PAPER


@pytest.mark.parametrize("preset", PAPER)
def test_every_paper_preset_states_table_numbers_and_command(preset):
    header = (ROOT / "conf" / "experiment" / f"{preset}.yaml").read_text().split("defaults:")[0]
    assert "Expected" in header or "twin" in header
    assert f"python -m harness.run experiment={preset}" in header


@pytest.mark.parametrize("preset", PAPER)
def test_cfg_job_prints_the_whole_study(preset):
    out = subprocess.run(
        [sys.executable, "-m", "harness.run", f"experiment={preset}", "--cfg", "job", "--resolve"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    printed = yaml.safe_load(out)["configurations"]
    run, _ = study(preset)
    assert len(printed) == len(run.configurations) and "${" not in out
    assert [row["name"] for row in printed] == [k.name for k in run.configurations]


def test_table3_has_the_13_mixtures_self_moa_and_taskbest_rows():
    run, confs = study("paper_table3")
    labels = [c.label for c in confs]
    mixtures = [c.knobs.mixture for c in confs if c.knobs.name == "mixed_moa"]
    assert mixtures == TABLE3_MIXTURES
    assert all(c.aggregator == QWEN for c in confs if c.knobs.name == "mixed_moa")
    self_moa = {(c.proposers[0][0], c.aggregator) for c in confs if c.knobs.name == "self_moa"}
    assert self_moa == {
        (QWEN, QWEN),
        (MATH, QWEN),
        (CODER, QWEN),
        (MATH, MATH),
        (CODER, CODER),
    }  # each model; TaskBest self-agg
    assert labels[:3] == ["single", "single(m)", "single(d)"]  # greedy "alone" rows
    assert_paper_protocol(confs)
    assert run.benchmark.limit is None and run.engine.name == "gpu"
    assert run.model.engine_kwargs["max_model_len"] >= 6 * 2048 + 2048


def test_table3_is_one_multirun_over_the_three_benchmarks():
    from hydra.types import RunMode

    cfg = hydra_compose("experiment=paper_table3")
    assert cfg.hydra.mode == RunMode.MULTIRUN
    assert cfg.hydra.sweeper.params.benchmark.split(",") == ["mmlu_redux", "cruxeval", "math500"]
    for bench in ("mmlu_redux", "cruxeval", "math500"):
        study("paper_table3", f"benchmark={bench}")


def test_cpu_twin_is_table3_with_cpu_models_in_the_paper_roles():
    _, gpu = study("paper_table3")
    run, cpu = study("paper_table3_cpu")
    assert [c.label for c in cpu] == [c.label for c in gpu]
    for g, c in zip(gpu, cpu, strict=True):
        assert tuple((CPU[m], n) for m, n in g.proposers) == c.proposers
        assert (g.aggregator and CPU[g.aggregator]) == c.aggregator
    assert_paper_protocol(cpu, max_tokens=256)
    assert run.engine.name == "cpu" and run.benchmark.limit == 20
    assert run.model.engine_kwargs["max_model_len"] <= 4096
    params = hydra_compose("experiment=paper_table3_cpu").hydra.sweeper.params
    assert params.benchmark.split(",") == ["gsm8k", "mmlu", "math500"]


def test_one_override_changes_every_row_of_a_paper_study():
    _, confs = study("paper_table3", "method.max_tokens=1024")
    assert {c.knobs.max_tokens for c in confs} == {1024}


def test_table7_mixes_i_and_l_on_mmlu():
    run, confs = study("paper_table7")
    assert run.benchmark.name == "mmlu_redux"
    assert [c.knobs.mixture for c in confs if c.knobs.name == "mixed_moa"] == [
        "iiiiil",
        "iiiill",
        "iiilll",
        "iillll",
        "illlll",
    ]
    selfs = {c.proposers for c in confs if c.knobs.name == "self_moa"}
    assert selfs == {((QWEN, 6),), (("llama-3.1-8b-instruct", 6),)}
    assert_paper_protocol(confs)


def test_seq_scaling_compares_seq_and_one_shot_over_k():
    _, confs = study("paper_seq_scaling")
    seq = [c.knobs for c in confs if c.knobs.name == "self_moa_seq"]
    assert [k.k for k in seq] == [9, 12, 18, 24, 30]
    assert all((k.window, k.reserved) == (6, 3) for k in seq)
    once = [c.knobs.k for c in confs if c.knobs.name == "self_moa"]
    assert 6 in once and max(once) >= 24
    for c in ensembles(confs):
        assert c.knobs.temperature == 0.7 and c.knobs.max_tokens == 2048


def test_alpaca_eval_pits_self_moa_against_six_different_models_with_a_judge():
    run, confs = study("paper_alpaca_eval")
    assert run.benchmark.name == "alpaca_eval" and run.benchmark.limit is None
    assert run.benchmark.judge is not None
    mixed = [c for c in confs if c.knobs.name == "mixed_moa"]
    assert {len(c.proposers) for c in mixed} == {6}  # six different models, one sample each
    assert sorted(c.knobs.layers for c in mixed) == [2, 3]
    selfs = [c for c in confs if c.knobs.name == "self_moa"]
    assert selfs and all(c.proposers[0][1] == 6 for c in selfs)
    assert_paper_protocol(mixed + selfs)


def test_table3_presets_carry_the_published_table_and_the_twin_does_not_compare():
    run, _ = study("paper_table3")
    table = run.paper["table3"]
    assert len(table["rows"]) == 19
    assert table["benchmarks"] == {"MMLU": "mmlu_redux", "CRUX": "cruxeval", "MATH": "math500"}
    assert sum(table["weights"].values()) == pytest.approx(1.0)
    for row in table["rows"]:  # Average is the plain mean of the three tasks, as published
        mean = (row["MMLU"] + row["CRUX"] + row["MATH"]) / 3
        assert mean == pytest.approx(row["Average"], abs=0.01)
        weighted = sum(row[c] * w for c, w in table["weights"].items())
        assert weighted == pytest.approx(row["WeightedAvg"], abs=0.01)
    twin, _ = study("paper_table3_cpu")
    assert twin.paper["table3"]["compare"] is False
    for name in ("table4", "table5"):  # the fits' published numbers: shown, not judged
        assert run.paper[name]["compare"] is True and twin.paper[name]["compare"] is False
        assert twin.paper[name]["rows"] == run.paper[name]["rows"]
    assert run.paper["table4"]["rows"]["CRUX"] == {"alpha": 4.548, "beta": 1.421, "se": 0.459,
                                                   "r2": 0.685, "n": "about 70"}  # fmt: skip
    assert {c: r["centered1"] for c, r in run.paper["table5"]["rows"].items()} == {
        c: r["r2"] for c, r in run.paper["table4"]["rows"].items()
    }  # K = 1: Table 4's R^2
    assert twin.paper["table3"]["benchmarks"] == {"MMLU": "mmlu", "CRUX": "gsm8k",
                                                  "MATH": "math500"}  # fmt: skip


def test_qd_preset_covers_all_28_multisets_of_i_m_d_with_aggregator_i():
    from itertools import combinations_with_replacement

    run, confs = study("paper_qd")
    letter = {QWEN: "i", MATH: "m", CODER: "d"}
    order = {"i": 0, "m": 1, "d": 2}
    found = sorted(
        "".join(sorted((letter[m] * n for m, n in c.proposers), key=lambda s: order[s[0]]))
        for c in ensembles(confs)
    )
    assert found == sorted("".join(c) for c in combinations_with_replacement("imd", 6))
    assert {c.aggregator for c in ensembles(confs)} == {QWEN}
    assert_paper_protocol(confs)
    params = hydra_compose("experiment=paper_qd").hydra.sweeper.params
    assert params.benchmark.split(",") == ["mmlu_redux", "cruxeval", "math500"]


def test_mixed_usc_and_seq_with_a_second_model_take_a_mixture():
    _, confs = study("mixed_usc_cpu")
    assert [(c.label, c.proposers) for c in confs] == [
        ("usc(qqssgg)", ((CPU[QWEN], 2), (CPU[MATH], 2), (CPU[CODER], 2))),
        ("usc(k=6)", ((CPU[QWEN], 6),)),
    ]
    _, confs = study("paper_seq_second_model")
    seq = {c.label: c for c in confs}
    assert seq["self_moa_seq(iiiiiiiiilll)"].proposers == ((QWEN, 9), ("llama-3.1-8b-instruct", 3))
    assert seq["self_moa_seq(iiiiiiiiiddd)"].proposers == ((QWEN, 9), (CODER, 3))
    assert {c.aggregator for c in ensembles(confs)} == {QWEN}
    _, confs = study("paper_alpaca_eval")
    mixed_usc = [c for c in confs if c.label == "usc(ilwedm)"]
    assert len(mixed_usc) == 1 and len(mixed_usc[0].proposers) == 6


def test_a_mixture_with_an_unknown_letter_is_refused():
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match=r"method.mixture='qqz': letters \['z'\]"):
        study("smoke", "method=usc", "method.mixture=qqz")


def test_hosted_aggregator_and_preference_tuned_presets():
    run, confs = study("paper_mt_bench")
    assert run.benchmark.name == "mt_bench" and run.models["gpt-4o"].engine == "openai"
    assert run.models["gpt-4o"].engine_kwargs["api_key_env"] == "OPENAI_API_KEY"
    assert [c.aggregator for c in confs if c.aggregator] == ["gpt-4o"]
    run, confs = study("paper_alpaca_wpo")
    assert run.benchmark.name == "alpaca_eval"
    (moa,) = ensembles(confs)
    assert moa.proposers == (("gemma-2-9b-it-wpo-hb", 4),)
    assert moa.aggregator == "gemma-2-9b-it-wpo-hb"


@pytest.mark.parametrize(
    "preset, table, published",
    [
        ("paper_table7", "table7", {66.16, 66.40, 69.01, 70.73, 71.27}),
        ("paper_alpaca_eval", "alpaca_eval", {43.9, 59.1, 65.4, 65.7, 53.8, 60.2}),
        ("paper_alpaca_wpo", "alpaca_wpo", {76.7, 78.5}),
        ("paper_mt_bench", "mt_bench", {9.52}),
    ],
)
def test_presets_carry_the_paper_numbers_of_their_tables(preset, table, published):
    run, confs = study(preset)
    t = run.paper[table]
    (column,) = t["benchmarks"]
    assert {r[column] for r in t["rows"]} == published
    assert list(t["benchmarks"].values()) == [run.benchmark.name]
    labels = {c.label for c in confs}
    for r in t["rows"]:  # a row named by label is one of the study's rows
        assert "label" not in r or r["label"] in labels, r
    for c in t.get("claims", []):
        for side in (c["row"], c["minus"]):
            assert not isinstance(side, str) or side in labels, side


@pytest.mark.parametrize("preset", ["paper_seq_second_model", "paper_seq_scaling"])
def test_seq_presets_carry_the_paper_claims_on_rows_of_their_study(preset):
    run, confs = study(preset)
    (table,) = run.paper.values()
    assert table["rows"] == [] and table["claims"][-1]["kind"] == "sequential"
    labels = {c.label for c in confs}
    for c in table["claims"][:-1]:
        assert {c["row"], c["minus"]} <= labels
