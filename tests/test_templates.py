"""Chat templates without a system role (harness.engines.templates): probe, fold, count.

conf/templates/no_system_role.jinja refuses a system role the way gemma-2's template does
("System role not supported", and roles must alternate). Here it is rendered by transformers'
own template renderer; the engine's request logic runs with vLLM's `LLM` stubbed (pure logic);
the real models' templates and a real study are in tests/test_swap_memory.py (slow).
"""

import sys
from types import SimpleNamespace

import pytest
from transformers.utils.chat_template_utils import render_jinja_template

from harness.benchmarks import get
from harness.config import ModelConfig, RunConfig
from harness.engines import SYSTEM_FOLDED, TEMPLATE_ERROR, Output, Sampling, template_error
from harness.engines.templates import accepts_system, fold_system, read_template
from harness.engines.vllm import VllmEngine
from harness.methods import knobs
from harness.metrics import study_metrics
from harness.plan import configurations
from harness.store import Store
from harness.summary import SYSTEM_FOLDED as FOLDED_KEY
from harness.tables import folded_line
from tests.conftest import FakeEngine, fake_slot, run_execute, typed

NO_SYSTEM = read_template("conf/templates/no_system_role.jinja")
DROPS = (
    "{% for m in messages %}{% if m['role'] != 'system' %}{{ m['content'] }}{% endif %}{% endfor %}"
)
KEEPS = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
SYSTEM = {"role": "system", "content": "Synthesise these."}
USER = {"role": "user", "content": "What is 2 + 2?"}


def renderer(template: str):
    return lambda conv: render_jinja_template([conv], chat_template=template)[0][0]


def test_the_probe_finds_a_refused_a_dropped_and_a_kept_system_role():
    ok, why = accepts_system(renderer(NO_SYSTEM))
    assert not ok and why == "it raises TemplateError: System role not supported"
    assert accepts_system(renderer(DROPS)) == (False, "it drops the system text")
    assert accepts_system(renderer(KEEPS)) == (True, "")


def test_folding_puts_the_same_text_at_the_top_of_the_first_user_turn():
    history = [SYSTEM, USER, {"role": "assistant", "content": "4"}, USER]
    folded = fold_system(history)
    assert folded[0] == {"role": "user", "content": f"{SYSTEM['content']}\n\n{USER['content']}"}
    assert folded[1:] == history[2:] and history[0] == SYSTEM  # the input is left alone
    assert fold_system([SYSTEM]) == [{"role": "user", "content": SYSTEM["content"]}]
    renderer(NO_SYSTEM)(folded)  # the refusing template takes it


def test_a_template_is_text_or_a_jinja_file_relative_to_the_project(tmp_path):
    assert "System role not supported" in NO_SYSTEM
    assert read_template(KEEPS) == KEEPS and read_template(None) is None
    (tmp_path / "t.jinja").write_text(KEEPS)
    assert read_template(str(tmp_path / "t.jinja")) == KEEPS


class StubTokenizer:
    def apply_chat_template(self, conv, chat_template, tokenize, add_generation_prompt):
        return render_jinja_template(
            [conv], chat_template=chat_template, add_generation_prompt=add_generation_prompt
        )[0][0]

    def __call__(self, text, add_special_tokens):
        return {"input_ids": text.split()}


class StubLLM:
    """vLLM's `LLM.chat`, answering 'ok' to each conversation it is sent (and keeping them)."""

    def __init__(self):
        self.sent = []

    def chat(self, convs, params, chat_template, use_tqdm):
        self.sent += convs
        done = SimpleNamespace(text="ok", token_ids=[1], finish_reason="stop", index=0)
        return [SimpleNamespace(outputs=[done], prompt_token_ids=[1, 2]) for _ in convs]


@pytest.fixture
def engine(monkeypatch):
    """The in-process engine's request logic on the refusing template, vLLM stubbed."""
    monkeypatch.setitem(sys.modules, "vllm", SimpleNamespace(SamplingParams=dict))
    engine = object.__new__(VllmEngine)
    engine.model_name, engine.max_model_len = "m", 4096
    engine.tokenizer, engine.llm, engine.chat_template = StubTokenizer(), StubLLM(), NO_SYSTEM
    engine.system_role, _ = accepts_system(engine.render)
    return engine


def test_the_engine_folds_system_text_and_a_refused_conversation_is_its_own_outcome(engine):
    convs = [[SYSTEM, USER], [USER, USER], [USER]]
    outs = engine.chat(convs, [Sampling()] * 3)
    assert outs[0].folded and outs[0].completions[0].text == "ok"
    assert outs[1].error == TEMPLATE_ERROR and not outs[1].completions
    assert outs[1].message == (
        "template_error: TemplateError: Conversation roles must alternate "
        "user/assistant/user/assistant/..."
    )
    assert not outs[2].folded and outs[2].completions
    assert engine.llm.sent == [fold_system(convs[0]), convs[2]]  # the refused one is not sent


class NoSystemEngine(FakeEngine):
    """A fake engine whose template has no system role and refuses 'Ana' (one item)."""

    def chat(self, conversations, params):
        outs = super().chat([fold_system(c) for c in conversations], params)
        return [
            template_error(ValueError("refused"))
            if "Ana" in c[-1]["content"]
            else Output(o.prompt_tokens, o.completions, folded=c[0]["role"] == "system")
            for c, o in zip(conversations, outs, strict=True)
        ]


def test_a_study_counts_the_folds_and_a_refused_item_is_a_counted_outcome(bench_cfg, tmp_path):
    models = {n: ModelConfig(name=n, path=f"org/{n}") for n in ("small", "big")}
    bench = get(bench_cfg)
    slot = fake_slot(models, lambda m: NoSystemEngine(m.name, []))
    run = RunConfig(
        model=models["small"], method=knobs("self_moa", k=2, aggregator="big"), baseline=False
    )
    store = Store(tmp_path / "store")
    records, stages = run_execute(configurations(run), bench.load(), bench, slot, store)
    outcomes = [r["outcome"] for r in records]
    assert outcomes.count(TEMPLATE_ERROR) == 1 and outcomes.count("ok") + 1 == len(records)
    refused = next(r for r in records if r["outcome"] == TEMPLATE_ERROR)
    assert (
        "Ana" in refused["question"] and refused["error"] == "template_error: ValueError: refused"
    )
    assert all(r["events"] == [SYSTEM_FOLDED] for r in records if r["outcome"] != TEMPLATE_ERROR)
    assert [(s.stage, s.folded, s.failed) for s in stages] == [
        ("propose", 0, {TEMPLATE_ERROR: 1}), ("aggregate", 2, {})
    ]  # fmt: skip
    metrics = study_metrics(typed(records), bench, 3, stages, store, {}, [])
    assert metrics.to_json()[FOLDED_KEY] == 2 and metrics.scalars(None)[FOLDED_KEY] == 2
    summary = next(iter(metrics.configurations.values()))
    assert summary.outcomes[TEMPLATE_ERROR] == 1 and summary.events == {SYSTEM_FOLDED: 2}
    assert "folded into the first user turn in 2 requests (big:" in folded_line(stages)
