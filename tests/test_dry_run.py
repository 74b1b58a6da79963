"""The dry run (`dry_run=true`, harness.dryrun): every sweep point's plan in seconds, with no
engine constructed and vLLM never imported; a model that cannot fit is one line and exit 2.

The entry point runs in a subprocess through a wrapper that makes constructing any engine of
the REGISTRY an error and reports afterwards which heavy modules were imported."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import sizing
from harness.config import ModelConfig, load_model_config
from harness.dryrun import block, duration, model_plans, prompt_tokens
from harness.plan import checked, compose, load_items, planned_generations

ROOT = Path(__file__).resolve().parent.parent
DATA = checked(compose())[0].paths.data  # this workplace's ../shared/data, None elsewhere
WRAPPER = """
import json, runpy, sys
from harness import engines

built = []
for kind, cls in engines.REGISTRY.items():
    def refuse(self, *args, _kind=kind, **kwargs):
        built.append(_kind)
        raise AssertionError(f"engine {_kind} constructed by a dry run")
    cls.__init__ = refuse
sys.argv = ["harness.run", *sys.argv[1:]]
code = 0
try:
    runpy.run_module("harness.run", run_name="__main__")
except SystemExit as e:
    code = e.code
heavy = sorted(m for m in ("vllm", "torch", "transformers") if m in sys.modules)
print("WRAPPER " + json.dumps({"code": code, "built": built, "heavy": heavy}))
"""


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def dry_run(tmp_path: Path, *overrides: str) -> tuple[subprocess.CompletedProcess, dict, float]:
    """The run's process, what the wrapper saw, and the CPU seconds it took (its wall time on
    this shared 2-core machine depends on the other agents' load; it is printed)."""
    start, cpu = time.time(), cpu_seconds()
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, *overrides, "dry_run=true",
         f"hydra.sweep.dir={tmp_path / 'sweep'}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    seconds = cpu_seconds() - cpu
    print(f"dry run {' '.join(overrides)}: {seconds:.1f} s CPU, {time.time() - start:.1f} s wall")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("WRAPPER "))
    return proc, json.loads(line.split(" ", 1)[1]), seconds


@pytest.mark.skipif(DATA is None, reason="no local benchmark data (../shared/data)")
def test_paper_table3_prints_each_benchmark_in_seconds_with_no_engine(tmp_path):
    proc, seen, seconds = dry_run(tmp_path, "experiment=paper_table3")
    assert seen == {"code": 0, "built": [], "heavy": []}, proc.stderr[-2000:]
    out = proc.stdout
    for bench in ("mmlu_redux", "cruxeval", "math500"):
        assert f"dry run of point benchmark={bench}: no model loaded" in out
    assert out.count("21 configurations: single, single(m), single(d), mixed_moa(iimmdd)") == 3
    for model, params in [("qwen2-7b-instruct", "7.62B"), ("deepseek-coder-v2-lite-instruct",
                                                          "15.71B")]:  # fmt: skip
        rows = [x.split() for x in out.splitlines() if x.split()[:1] == [model]]
        assert [r[1:5] for r in rows[:1]] == [["gpu", params, "bfloat16", "1"]]
    assert "memory per GPU: a 80.0 GiB GPU (engine.device_memory_gib" in out or "torch.cuda" in out
    assert out.count("stages (one batched engine call each, at least): propose on") == 3
    assert (
        "hours: generated tokens at each engine's tokens_per_s_hint (gpu 3000/s) plus prompt "
        "tokens at its prompt_tokens_per_s_hint (gpu 20000/s;" in out
    )
    assert "DOES NOT FIT" not in out and not (tmp_path / "sweep" / "summary.txt").exists()
    assert seconds < 20


def test_a_four_point_sweep_prints_one_block_per_point(tmp_path, data_dir):
    proc, seen, seconds = dry_run(
        tmp_path, "-m", "method.k=2,4", "method=self_moa,self_moa_seq",
        f"benchmark.data_dir={data_dir}",
    )  # fmt: skip
    assert seen == {"code": 0, "built": [], "heavy": []}, proc.stderr[-2000:]
    heads = [x for x in proc.stdout.splitlines() if x.startswith("dry run of point ")]
    assert len(heads) == 4 and len(set(heads)) == 4, heads
    assert proc.stdout.count("benchmark gsm8k: 3 items") == 4
    assert "qwen2.5-coder-0.5b-instruct" in proc.stdout and "memory of the host" in proc.stdout
    assert seconds < 20


@pytest.mark.parametrize(
    "overrides, says",
    [
        # 141 GiB of bf16 weights on one GPU: over an H100's and an H200's 0.9
        (["engine=gpu", "model=llama-3.3-70b-instruct",
          "model.engine_kwargs.tensor_parallel_size=1"],
         "llama-3.3-70b-instruct cannot fit: 131.4 GiB of weights (70.55B x bfloat16)"),
        (["engine=gpu", "model=llama-3.3-70b-instruct",
          "model.engine_kwargs.tensor_parallel_size=16"],
         "llama-3.3-70b-instruct's engine_kwargs.tensor_parallel_size=16 but "),
        (["engine.kwargs.kv_cache_memory_bytes=1000000"],
         "engine.kwargs.kv_cache_memory_bytes=1000000 holds fewer than one sequence of "
         "max_model_len=4096"),
    ],
)  # fmt: skip
def test_a_model_that_cannot_fit_is_one_line_and_exit_2(tmp_path, data_dir, overrides, says):
    proc, seen, _ = dry_run(tmp_path, *overrides, f"benchmark.data_dir={data_dir}")
    assert seen == {"code": 2, "built": [], "heavy": []}, proc.stderr[-2000:]
    lines = [x for x in proc.stderr.splitlines() if "[INFO]" not in x]
    assert len(lines) == 1 and lines[0].startswith("config error: "), proc.stderr
    assert says in lines[0]
    assert "DOES NOT FIT" in proc.stdout or "but " in lines[0]  # the plan came first


def test_a_sweep_point_that_cannot_fit_is_its_line_and_exit_2(tmp_path, data_dir):
    proc, seen, _ = dry_run(
        tmp_path, "-m", "engine.kwargs.kv_cache_memory_bytes=1000,2147483648",
        f"benchmark.data_dir={data_dir}",
    )  # fmt: skip
    assert seen["code"] == 2 and seen["built"] == [] and seen["heavy"] == [], proc.stderr[-2000:]
    lines = [x for x in proc.stderr.splitlines() if "[INFO]" not in x and "[HYDRA]" not in x]
    assert len(lines) == 1 and lines[0].startswith("sweep point 0_"), proc.stderr
    assert "kv_cache_memory_bytes=1000 holds fewer than one sequence" in lines[0]
    assert proc.stdout.count("dry run of point ") == 2  # the other point printed its plan


# -- the figures, without a subprocess ---------------------------------------------------------
def test_kv_cache_per_token_from_the_architecture():
    cpu = sizing.Device("cpu", 1, 64 * sizing.GiB, "host RAM")
    qwen = sizing.model_need(load_model_config("qwen2-7b-instruct"), {"dtype": "auto"}, cpu, 1, 1)
    assert qwen.kv_per_token == 28 * 4 * 128 * 2 * 2  # layers x kv heads x head_dim x K,V x bf16
    assert qwen.weights == 7615616512 * 2 and qwen.dtype == "bfloat16"
    mla = load_model_config("deepseek-coder-v2-lite-instruct")
    two = sizing.model_need(mla, {"tensor_parallel_size": 2}, cpu, 1, 1)
    assert two.kv_per_token == 27 * (512 + 64) * 2 // 2  # one latent a layer, split over 2 GPUs
    fp8 = sizing.model_need(mla, {"kv_cache_dtype": "fp8"}, cpu, 1, 1)
    assert fp8.kv_per_token == 27 * 576


def test_a_folder_gives_its_own_figures(tmp_path):
    """A local model folder: config.json's figures and the safetensors header's shapes."""
    header = json.dumps({
        "a": {"dtype": "F32", "shape": [10, 3], "data_offsets": [0, 120]},
        "b": {"dtype": "F32", "shape": [5], "data_offsets": [120, 140]},
    })  # fmt: skip
    data = len(header).to_bytes(8, "little") + header.encode() + bytes(140)
    (tmp_path / "model.safetensors").write_bytes(data)
    (tmp_path / "config.json").write_text(json.dumps({"num_hidden_layers": 2,
        "num_attention_heads": 4, "hidden_size": 64, "torch_dtype": "float32"}))  # fmt: skip
    arch = sizing.model_arch(ModelConfig(name="tiny", path=str(tmp_path)))
    figures = (arch.params, arch.layers, arch.kv_elements, arch.dtype)
    assert figures == (35, 2, 2 * 4 * 16, "float32")
    assert arch.source == "config.json"


def test_tensor_parallel_and_memory_verdicts():
    model = load_model_config("qwen2.5-72b-instruct")  # its yaml asks tensor_parallel_size 4
    node = sizing.Device("cuda", 4, 80 * sizing.GiB, "NVIDIA H100")
    kwargs = {"dtype": "auto", "max_model_len": 16384, "tensor_parallel_size": 4}
    need = sizing.model_need(model, kwargs, node, 256, 4000)
    assert sizing.fit_problem(need, model) is None
    small = sizing.Device("cuda", 2, 80 * sizing.GiB, "NVIDIA H100")
    assert "but this node has 2 GPU(s)" in sizing.fit_problem(
        sizing.model_need(model, kwargs, small, 256, 4000), model
    )
    one = sizing.model_need(model, kwargs | {"tensor_parallel_size": 1}, node, 256, 4000)
    assert "cannot fit" in sizing.fit_problem(one, model)


def test_per_model_counts_add_up_to_the_plan(data_dir):
    """The dry run's per-model generations and tokens sum to plan.planned_generations."""
    run, confs = checked(compose("experiment=mixtures_cpu", f"benchmark.data_dir={data_dir}"))
    bench, items = load_items(run, check=False)
    plans = model_plans(run, confs, len(items), bench.turns, prompt_tokens(bench, items))
    total = planned_generations(confs, len(items), bench.turns)
    assert sum(p.proposals for p in plans.values()) == total["proposals"]
    assert sum(p.aggregations for p in plans.values()) == total["aggregations"]
    assert sum(p.generated_tokens for p in plans.values()) == total["tokens"]
    assert len(plans) >= 2 and all(p.batch > 0 and p.seq_tokens > 0 for p in plans.values())


def test_hours_add_the_prompt_tokens_at_the_prefill_hint(data_dir):
    """Aggregations read every proposal: on the CPU twin most of their time is prefill, so the
    hours are generated tokens at tokens_per_s_hint plus prompt tokens at the prompt hint."""
    run, confs = checked(compose("experiment=mixtures_cpu", f"benchmark.data_dir={data_dir}"))
    bench, items = load_items(run, check=False)
    plans = model_plans(run, confs, len(items), bench.turns, prompt_tokens(bench, items))
    generated = sum(p.generated_tokens for p in plans.values())
    prompts = sum(p.prompt_tokens for p in plans.values())

    def hours(prefill: float) -> str:
        run.engine.prompt_tokens_per_s_hint = prefill
        text, _ = block(run, confs, bench, items)
        (total,) = [x.split() for x in text.splitlines() if x.split()[:1] == ["total"]]
        return " ".join(total[-2:])

    rate = run.engine.tokens_per_s_hint
    assert run.engine.name == "cpu" and rate > 0 and prompts > generated > 0
    assert hours(0) == duration(generated / rate)  # 0: prompts not counted
    assert hours(180) == duration(generated / rate + prompts / 180) != hours(0)
