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


# ---------------------------------------------------- enforce_eager: auto, by the planned work ----


class Recorder:
    """An engine kind that loads nothing and records the enforce_eager it was given."""

    kind = "vllm"
    reads_weights = False
    seen: list = []

    def __init__(self, model, engine, seed=0):
        self.model_name, self.load_s = model.name, 0.0
        Recorder.seen.append(engine_kwargs(model, engine)["enforce_eager"])

    def chat(self, conversations, params):
        from harness.engines import Completion, Output

        return [Output(3, tuple(Completion("x", 1, "stop") for _ in range(p.n))) for p in params]

    def close(self):
        pass

    @staticmethod
    def identity(model, engine):
        return model.name


def auto(crossover: int) -> EngineConfig:
    engine = cpu()
    engine.kwargs["enforce_eager"] = "auto"
    engine.compile_crossover_tokens = crossover
    return engine


def test_enforce_eager_auto_compiles_a_load_planned_to_decode_past_the_crossover(monkeypatch):
    from harness.engines import REGISTRY
    from harness.engines.factory import make_engine
    from harness.engines.vllm import compile_choice

    assert load_engine_config("cpu").kwargs["enforce_eager"] == "auto"
    assert load_engine_config("cpu").compile_crossover_tokens > 0
    assert compile_choice(auto(1000), 999)[0] is True
    assert compile_choice(auto(1000), 1000) == (
        False, "1000 planned decode tokens >= crossover 1000: compiled"
    )  # fmt: skip
    assert engine_kwargs(HUB, auto(1000))["enforce_eager"] is True  # no plan given: eager
    monkeypatch.setitem(REGISTRY, "vllm", Recorder)
    Recorder.seen = []
    make_engine(HUB, auto(1000), 0, planned_tokens=5000)
    make_engine(HUB, auto(1000), 0, planned_tokens=10)
    make_engine(HUB, auto(1000))
    explicit = auto(1000)
    explicit.kwargs["enforce_eager"] = True  # the user's setting wins
    make_engine(HUB, explicit, 0, planned_tokens=10**9)
    own = ModelConfig(name="m", path="org/m", engine_kwargs={"enforce_eager": "auto"})
    make_engine(own, explicit, 0, planned_tokens=10**9)  # a model's own auto
    assert Recorder.seen == [False, True, True, True, False]


def test_a_stage_loads_its_model_for_the_decode_tokens_it_plans(tmp_path, monkeypatch):
    from harness.engines import REGISTRY, Sampling
    from harness.generate import Generator, ModelSlot
    from harness.store import Store

    monkeypatch.setitem(REGISTRY, "vllm", Recorder)
    Recorder.seen = []
    slot = ModelSlot({"small": HUB}, auto(1000))
    gen = Generator(slot, Store(tmp_path / "store"), 0)
    conv = [{"role": "user", "content": "hi"}]
    gen.stage("propose", "small", [(conv, Sampling(n=3, max_tokens=200, seed=1))])
    assert slot.planned_tokens == 600 and Recorder.seen == [True]
    slot.close()
    gen.stage("propose", "small", [(conv, Sampling(n=6, max_tokens=200, seed=1))])
    assert slot.planned_tokens == 600  # samples 3..5 only: 0..2 came from the store
    gen.stage(
        "propose", "small", [([{"role": "user", "content": "a"}], Sampling(n=5, max_tokens=200))]
    )
    assert Recorder.seen == [True, True]  # resident: not loaded again
    slot.close()
    gen.stage(
        "propose", "small", [([{"role": "user", "content": "b"}], Sampling(n=8, max_tokens=200))]
    )
    assert slot.planned_tokens == 1600 and Recorder.seen == [True, True, False]
