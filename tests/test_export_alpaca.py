"""The AlpacaEval export: model_outputs.json per configuration, in the reference's format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from harness.benchmarks.alpaca_eval import REFERENCE_FILE
from harness.export_alpaca import (
    ExportError,
    evaluate,
    export,
    generator_name,
    main,
    read_reference,
    validate,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

# our own instructions, in the reference file's layout
REFERENCE = [
    {"dataset": "helpful_base", "instruction": "Name a colour.", "output": "Blue.",
     "generator": "gpt4_1106_preview"},
    {"dataset": "koala", "instruction": "Say hello.", "output": "Hello!",
     "generator": "gpt4_1106_preview"},
    {"dataset": "vicuna", "instruction": "Count to three.", "output": "1, 2, 3",
     "generator": "gpt4_1106_preview"},
]  # fmt: skip


def alpaca_record(label: str, index: int, question: str, final: str | None) -> dict:
    return {
        "configuration": label, "method": "self_moa", "item_id": f"alpaca_eval/{index}",
        "turn": 1, "question": question, "reference": "", "proposals": [], "rounds": [],
        "aggregation": None, "order": [], "events": [], "final_text": final, "answer": None,
        "score": 0.5, "judgment": None, "outcome": "ok", "error": None, "calls": 7,
        "prompt_tokens": 10, "generated_tokens": 10, "gen_s": 0.0,
    }  # fmt: skip


def alpaca_run(tmp_path: Path, reference: list[dict], data_dir: Path, indices=(2, 0)) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    records = [
        alpaca_record(label, i, reference[i]["instruction"], f"{label} answers {i}")
        for label in ("self_moa(k=6)", "mixed_moa(qqqsss)")
        for i in indices
    ]
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "metrics.json").write_text(
        json.dumps({"benchmark": "alpaca_eval", "metric": "win_rate"})
    )
    config = {"benchmark": {"name": "alpaca_eval", "data_dir": str(data_dir)}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return run


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data" / REFERENCE_FILE
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(REFERENCE))
    return tmp_path / "data"


def test_generator_names_are_file_safe():
    assert generator_name("mixed_moa(qqqsss)") == "mixed_moa_qqqsss"
    assert generator_name("self_moa(k=6,agg=i)") == "self_moa_k_6_agg_i"


def test_export_writes_one_valid_file_per_configuration_in_reference_order(tmp_path, data_dir):
    run = alpaca_run(tmp_path, REFERENCE, data_dir)
    written = export(run)
    assert set(written) == {"self_moa(k=6)", "mixed_moa(qqqsss)"}
    path = written["mixed_moa(qqqsss)"]
    assert path == run / "alpaca_eval" / "mixed_moa_qqqsss" / "model_outputs.json"
    rows = json.loads(path.read_text())
    assert rows == [
        {"dataset": "helpful_base", "instruction": "Name a colour.",
         "output": "mixed_moa(qqqsss) answers 0", "generator": "mixed_moa_qqqsss"},
        {"dataset": "vicuna", "instruction": "Count to three.",
         "output": "mixed_moa(qqqsss) answers 2", "generator": "mixed_moa_qqqsss"},
    ]  # fmt: skip
    assert validate(rows, REFERENCE) == []


def test_validate_names_what_differs_from_the_reference_format():
    good = {"dataset": "koala", "instruction": "Say hello.", "output": "Hi", "generator": "g"}
    assert validate([good], REFERENCE) == []
    assert "fields" in validate([{**good, "extra": 1}], REFERENCE)[0]
    assert "not in the reference" in validate([{**good, "instruction": "?"}], REFERENCE)[0]
    assert "dataset" in validate([{**good, "dataset": "oasst"}], REFERENCE)[0]
    assert "repeated" in validate([good, good], REFERENCE)[0]
    assert "one generator" in validate([good, {**good, "generator": "h"}], REFERENCE)[0]


def test_a_question_that_is_not_the_references_stops_the_export(tmp_path, data_dir):
    run = alpaca_run(tmp_path, REFERENCE, data_dir)
    lines = (run / "records.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["question"] = "Something else."
    (run / "records.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    with pytest.raises(ExportError, match="not the reference's"):
        export(run)


def test_cli_refuses_another_benchmark_and_says_when_the_evaluator_cannot_run(
    tmp_path, data_dir, capsys, monkeypatch
):
    run = alpaca_run(tmp_path, REFERENCE, data_dir)
    monkeypatch.setattr("harness.export_alpaca.evaluator_missing", lambda a: "no package here")
    assert main([str(run), "--evaluate"]) == 0
    out = capsys.readouterr().out
    assert "official AlpacaEval evaluation not run: no package here" in out
    assert "alpaca_eval evaluate --model_outputs" in out
    (run / "metrics.json").write_text(json.dumps({"benchmark": "gsm8k"}))
    assert main([str(run)]) == 2
    assert "not alpaca_eval" in capsys.readouterr().err


def test_evaluate_without_the_package_or_a_key_says_so_and_returns_zero(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert (
        evaluate(
            {"x": tmp_path / "x.json"}, tmp_path / "ref.json", "weighted_alpaca_eval_gpt4_turbo"
        )
        == 0
    )
    assert "not run" in capsys.readouterr().out


@pytest.mark.skipif(not (SHARED / REFERENCE_FILE).exists(), reason="no shared AlpacaEval copy")
def test_export_matches_the_shipped_reference_and_submissions_format(tmp_path):
    reference = read_reference(SHARED / REFERENCE_FILE)
    for name in ("SelfMoA_gemma-2-9b-it-SimPO", "Together-MoA"):  # shipped leaderboard files
        shipped = json.loads(
            (SHARED / f"alpaca_eval/results/{name}/model_outputs.json").read_text()
        )
        assert validate(shipped, reference) == []
    run = alpaca_run(tmp_path, reference, SHARED, indices=(0, 1, 804))
    rows = json.loads(export(run)["self_moa(k=6)"].read_text())
    assert validate(rows, reference) == []
    assert [r["instruction"] for r in rows] == [reference[i]["instruction"] for i in (0, 1, 804)]
    assert {tuple(sorted(r)) for r in rows} == {tuple(sorted(reference[0]))}


@pytest.mark.parametrize(
    "judge", ["llama-3.3-70b-instruct", "qwen2.5-72b-instruct", "qwen2.5-32b-instruct"]
)
def test_open_judge_configs_compose_as_the_alpaca_eval_judge(judge):
    from harness.plan import checked_run
    from tests.conftest import compose_config

    run = checked_run(compose_config("benchmark=alpaca_eval", f"benchmark.judge={judge}"))
    assert run.benchmark.judge == judge
    model = checked_run(compose_config(f"model={judge}", "method=single")).model
    assert "/" in model.path and model.engine_kwargs["tensor_parallel_size"] >= 2
