"""Engine choice and store identities without loading a model: the CPU dtype rule, dtypes in
identities (float32 keys from before stay valid), per-model engine presets, server flags."""

from harness.config import EngineConfig, ModelConfig
from harness.engines.factory import engine_config, load_engine_config, model_identity
from harness.engines.vllm import cpu_dtype, engine_kwargs
from harness.serve import command, flags

HUB = ModelConfig(name="small", path="org/small", revision="r1")


def cpu(dtype=None) -> EngineConfig:
    engine = load_engine_config("cpu")
    if dtype is not None:
        engine.kwargs["dtype"] = dtype
    return engine


def test_cpu_dtype_is_bf16_only_where_the_cpu_computes_it():
    assert cpu_dtype({"avx2", "avx512f", "avx512_bf16"}) == "bfloat16"
    assert cpu_dtype({"avx2", "amx_bf16", "amx_tile"}) == "bfloat16"
    assert cpu_dtype({"avx2", "fma"}) == "float32"
    assert cpu_dtype(set()) == "float32"


def test_cpu_preset_chooses_the_dtype_from_the_flags_and_an_override_wins():
    assert engine_kwargs(HUB, cpu())["dtype"] == cpu_dtype()
    assert engine_kwargs(HUB, cpu("float32"))["dtype"] == "float32"
    own = ModelConfig(name="m", path="org/m", engine_kwargs={"dtype": "float32"})
    assert engine_kwargs(own, cpu("bfloat16"))["dtype"] == "float32"


def test_float32_and_auto_identities_are_the_keys_of_existing_stores():
    """The golden store (tests/data/golden) holds hub identities made before dtypes counted."""
    assert model_identity(HUB, EngineConfig(name="x")) == "hub:org/small@r1"
    assert model_identity(HUB, cpu("float32")) == "hub:org/small@r1"
    assert model_identity(HUB, load_engine_config("gpu")) == "hub:org/small@r1"  # dtype auto


def test_other_dtypes_are_part_of_the_identity():
    assert model_identity(HUB, cpu("bfloat16")) == "hub:org/small@r1 dtype=bfloat16"
    assert model_identity(HUB, cpu("bfloat16")) != model_identity(HUB, cpu("float16"))


def test_a_model_preset_engine_replaces_the_runs_for_that_model_only():
    served = ModelConfig(name="p", path="org/p", engine="openai")
    assert engine_config(served, cpu()).kind == "openai"
    assert engine_config(HUB, cpu()).name == "cpu"
    same = ModelConfig(name="q", path="org/q", engine="cpu")
    run_engine = cpu("float32")
    assert engine_config(same, run_engine) is run_engine  # the run's overrides still apply


def test_engine_kwargs_become_server_flags():
    assert flags({"enforce_eager": True, "enable_chunked_prefill": False, "max_num_seqs": 8}) == [
        "--enforce-eager",
        "--no-enable-chunked-prefill",
        "--max-num-seqs",
        "8",
    ]
    argv, env = command(HUB, cpu("float32"), 8123)
    assert argv[argv.index("--served-model-name") + 1] == "small"
    assert argv[argv.index("--dtype") + 1] == "float32"
    assert "--distributed-executor-backend" not in argv
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in env
