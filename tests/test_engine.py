"""The real vLLM CPU engine on a real model (SmolLM2-135M-Instruct, prepared from PyPI's GGUF).

SmolLM2 cannot do arithmetic, so these tests check format, batching and determinism, not answers.
"""

import pytest

from harness.config import load_model_config
from harness.engines import Sampling
from harness.engines.vllm import VllmEngine
from tests.conftest import compose_config

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "Name a colour of the sky."}]


def cpu_engine_config():
    from harness.plan import checked_run

    return checked_run(compose_config("model=smollm2-135m-instruct")).engine


@pytest.fixture(scope="module")
def engine():
    eng = VllmEngine(load_model_config("smollm2-135m-instruct"), cpu_engine_config(), seed=0)
    yield eng
    eng.close()


def sampled(n: int, seed: int, max_tokens: int = 16) -> Sampling:
    return Sampling(n=n, temperature=0.8, max_tokens=max_tokens, seed=seed)


def test_num_samples_count_and_token_counts(engine):
    outs = engine.chat([QUESTION, QUESTION + []], [sampled(3, 1), sampled(2, 2)])
    assert [len(o.completions) for o in outs] == [3, 2]
    for out in outs:
        assert out.error is None and out.prompt_tokens > 5
        for c in out.completions:
            assert 0 < c.tokens <= 16 and c.text and c.finish_reason in ("stop", "length")


def test_seed_reproducibility(engine):
    first = engine.chat([QUESTION], [sampled(4, 123)])[0]
    again = engine.chat([QUESTION], [sampled(4, 123)])[0]
    other = engine.chat([QUESTION], [sampled(4, 999)])[0]
    texts = [c.text for c in first.completions]
    assert texts == [c.text for c in again.completions]
    assert texts != [c.text for c in other.completions]
    assert len(set(texts)) > 1  # the k samples of one item differ from each other


def test_sample_j_does_not_depend_on_k(engine):
    """vLLM seeds sample j of an n-sample request with seed + j: growing k keeps earlier samples."""
    four = engine.chat([QUESTION], [sampled(4, 50)])[0]
    two = engine.chat([QUESTION], [sampled(2, 50)])[0]
    alone = engine.chat([QUESTION], [sampled(1, 52)])[0]
    assert [c.text for c in two.completions] == [c.text for c in four.completions[:2]]
    assert alone.completions[0].text == four.completions[2].text


def test_seeded_batch_larger_than_one_scheduler_step(engine):
    """Regression: with chunked prefill, vLLM CPU crashes on seeded requests whose prefill is
    split ("CPU Generator does not use offset"); conf/engine/cpu.yaml turns it off."""
    long = [
        [{"role": "user", "content": f"Item {i}. " + "Repeat the word apple. " * 60}]
        for i in range(24)
    ]
    outs = engine.chat(long, [sampled(2, 100 + i, max_tokens=4) for i in range(24)])
    assert sum(o.prompt_tokens for o in outs) * 2 > engine.max_model_len * 2
    assert all(len(o.completions) == 2 for o in outs)


def test_model_chat_template_is_applied(engine):
    rendered = engine.tokenizer.apply_chat_template(
        QUESTION, tokenize=False, add_generation_prompt=True
    )
    assert "<|im_start|>user" in rendered and rendered.rstrip().endswith("assistant")
    out = engine.chat([QUESTION], [Sampling(max_tokens=4)])[0]
    assert out.prompt_tokens == engine.prompt_tokens(QUESTION)


def test_greedy_is_deterministic_without_seed(engine):
    a = engine.chat([QUESTION], [Sampling(max_tokens=12)])[0].completions[0].text
    b = engine.chat([QUESTION], [Sampling(max_tokens=12)])[0].completions[0].text
    assert a == b


def test_prompt_longer_than_context_is_reported_and_batch_goes_on(engine):
    huge = [{"role": "user", "content": "word " * (engine.max_model_len + 10)}]
    outs = engine.chat([QUESTION, huge, QUESTION], [Sampling(max_tokens=4)] * 3)
    assert outs[1].completions == () and outs[1].error.startswith("prompt_too_long")
    assert outs[1].prompt_tokens >= engine.max_model_len
    assert outs[0].completions and outs[2].completions


# Keep this test last in the module: it closes the shared engine.
def test_engine_releases_and_a_new_one_loads_in_the_same_process(engine):
    before = engine.chat([QUESTION], [sampled(2, 7)])[0]
    engine.close()
    fresh = VllmEngine(load_model_config("smollm2-135m-instruct"), cpu_engine_config(), seed=0)
    try:
        after = fresh.chat([QUESTION], [sampled(2, 7)])[0]
        assert [c.text for c in after.completions] == [c.text for c in before.completions]
    finally:
        fresh.close()
