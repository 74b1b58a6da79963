"""A real 3-model study swapping models in one process (vLLM CPU, the cpu preset's in-process
engine core): every close returns the memory, and an aggregator whose template refuses a system
role completes with the fold counted.

Mixed-MoA over SmolLM2, Qwen2.5-Coder-0.5B and gemma-3-270m (one sample each), aggregated by
SmolLM2 under conf/templates/no_system_role.jinja (refuses a system role like gemma-2's): four
loads and four closes. Asserted of the RSS of this process and its children: after every close
it is back within RETURN_SLACK_GIB (0.5 GiB) of the level before the first load (taken after
`import vllm`: the library's own memory is no model's). scripts/swap_memory.py measured, for the
cycle SmolLM2 -> Qwen -> gemma -> SmolLM2 on this machine: +0.38/+0.41/+0.44/+0.44 GiB after the
closes with the engine core in-process (the cpu preset), +0.32/+0.34/+0.37/+0.37 as a child
process. Before the close emptied vLLM's tokenizer pool (lifecycle.empty_tokenizer_pool) each new
architecture left a one-time cost (+1.6 GiB after gemma-3).
"""

import pytest
from omegaconf import OmegaConf

from harness.engines import SYSTEM_FOLDED
from harness.engines.lifecycle import RETURN_SLACK_GIB, GiB, process_tree_rss
from harness.engines.vllm import VllmEngine
from harness.metrics import study_metrics
from harness.plan import checked_run, compose, configurations, load_items
from harness.study import run_study
from harness.summary import SYSTEM_FOLDED as FOLDED_KEY

pytestmark = pytest.mark.slow

AGGREGATOR = "smollm2-135m-instruct-no-system"
CPU_MODELS = ("smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "gemma-3-270m")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from tests.conftest import write_gsm8k

    data = write_gsm8k(tmp_path_factory.mktemp("data"))
    cfg = compose(
        "model=smollm2-135m-instruct",
        f"benchmark.data_dir={data}",
        "benchmark.limit=2",
        f"store_dir={tmp_path_factory.mktemp('store')}",
        "logger.mode=disabled",
        "baseline=false",
    )
    cfg.configurations = OmegaConf.create(
        [{"name": "mixed_moa", "mixture": "sqg", "aggregator": AGGREGATOR, "temperature": 0.7,
          "max_tokens": 16, "aggregator_max_tokens": 16}]
    )  # fmt: skip
    run = checked_run(cfg, str(tmp_path_factory.mktemp("run")))
    assert run.engine.env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"  # the cpu preset's default
    bench, items = load_items(run)
    confs = configurations(run)
    import vllm  # noqa: F401 - the import's own memory is no model's

    closes, templates = [], {}
    close = VllmEngine.close

    def measured_close(engine):
        templates[engine.model_name] = engine.system_role
        before, loaded = engine.footprint.before, process_tree_rss()
        close(engine)
        closes.append(
            (engine.model_name, *((x - base) / GiB for x in (before, loaded, process_tree_rss())))
        )

    mp = pytest.MonkeyPatch()
    mp.setattr(VllmEngine, "close", measured_close)
    base = process_tree_rss()
    try:
        records, stages, store = run_study(run, confs, items, bench)
    finally:
        mp.undo()
    metrics = study_metrics(records, bench, len(items), stages, store, {}, [])
    return records, metrics, closes, templates


def test_every_close_returns_to_the_level_before_the_first_load(study):
    _, _, closes, _ = study
    assert [name for name, *_ in closes] == [*CPU_MODELS, AGGREGATOR]
    assert all(closed <= RETURN_SLACK_GIB for *_, closed in closes), closes
    assert all(
        loaded - closed >= 0.75 * (loaded - before) for _, before, loaded, closed in closes
    ), closes


def test_the_cpu_models_templates_take_a_system_message_and_the_override_refuses_it(study):
    _, _, _, templates = study
    assert templates == {**dict.fromkeys(CPU_MODELS, True), AGGREGATOR: False}


def test_the_aggregator_without_a_system_role_completes_with_the_fold_counted(study):
    records, metrics, _, _ = study
    assert len(records) == 2 and all(r.outcome in ("ok", "no_answer") for r in records)
    assert all(r.aggregation is not None and r.events == (SYSTEM_FOLDED,) for r in records)
    aggregate = next(s for s in metrics.stages if s.stage == "aggregate")
    assert aggregate.model == AGGREGATOR and aggregate.folded == 2
    assert metrics.to_json()[FOLDED_KEY] == 2
    assert sum(s.folded for s in metrics.stages if s.stage == "propose") == 0
