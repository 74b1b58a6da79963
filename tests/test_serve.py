"""The served engine against a real `vllm serve` of SmolLM2 on CPU, started here (slow).

The server gets the in-process engine's settings (harness.serve), so equal seeds give equal
texts in both: sample j of n has seed + j on both sides, and every request's sampling uses its
own seeded generator. Equal texts also need equal logits, and bfloat16 logits differ between the
two processes in their last bits (batch composition and kernel blocking change the sums): a
sampled text drifted after seven words when the server batched four requests one way and the
in-process engine another, and after thirteen words on the CI machine even with one conversation
at a time on both sides. So these tests run float32, where such differences are far below what
flips a seeded draw, and send one conversation at a time. A study with served proposers and an
in-process aggregator stores and scores like an in-process one, and the API key never reaches
the run directory, the store, the logs or W&B's offline files.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import load_model_config
from harness.engines import Sampling
from harness.engines.factory import load_engine_config, make_engine, model_identity
from harness.engines.vllm import VllmEngine
from harness.serve import command, wait_ready
from tests.conftest import PROBLEMS, write_gsm8k

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-harness-test-7c1e55d0"
SMALL_KV = {
    "dtype": "float32",
    "kv_cache_memory_bytes": 536870912,
    "max_model_len": 2048,
    "max_num_batched_tokens": 2048,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_engine():
    engine = load_engine_config("cpu")
    engine.kwargs |= SMALL_KV
    return engine


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """SmolLM2 served on CPU with the cpu preset's settings, behind an API key."""
    model = load_model_config("smollm2-135m-instruct")
    port = free_port()
    argv, env = command(model, cpu_engine(), port)
    log = tmp_path_factory.mktemp("server") / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            argv, env={**os.environ, **env, "VLLM_API_KEY": KEY}, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(url, 600, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert KEY not in log.read_text()


def served_engine(url: str, **settings):
    engine = load_engine_config("openai")
    engine.kwargs |= {"base_urls": [url], "api_key_env": "HARNESS_TEST_KEY", "urls_file": None}
    engine.kwargs |= settings
    return engine


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("HARNESS_TEST_KEY", KEY)


QUESTIONS = [[{"role": "user", "content": q}] for q, _ in PROBLEMS]


def test_served_texts_equal_in_process_texts_for_equal_seeds(server, key):
    model = load_model_config("smollm2-135m-instruct")
    params = [Sampling(n=3, temperature=0.8, max_tokens=24, seed=100 + i) for i in range(3)]
    params += [Sampling(max_tokens=24)]  # greedy
    convs = [*QUESTIONS, QUESTIONS[0]]
    served = make_engine(model, served_engine(server, concurrency=1))
    remote = served.chat(convs, params)
    served.close()
    local = VllmEngine(model, cpu_engine(), seed=0)
    try:
        here = [local.chat([c], [p])[0] for c, p in zip(convs, params, strict=True)]
    finally:
        local.close()
    for r, h in zip(remote, here, strict=True):
        assert [c.text for c in r.completions] == [c.text for c in h.completions]
        assert [c.tokens for c in r.completions] == [c.tokens for c in h.completions]
        assert r.prompt_tokens == h.prompt_tokens
    assert served.outcomes["ok"] == len(convs) and served.deterministic


def test_prompt_over_the_servers_context_is_too_long_and_the_rest_is_answered(server, key):
    served = make_engine(load_model_config("smollm2-135m-instruct"), served_engine(server))
    huge = [{"role": "user", "content": "word " * 3000}]
    outs = served.chat([QUESTIONS[0], huge], [Sampling(max_tokens=4, seed=1)] * 2)
    assert outs[0].completions and outs[1].too_long and outs[1].context_limit == 2048
    assert outs[1].prompt_tokens > 2048


def test_identity_names_the_served_model_and_its_weights(server, key):
    identity = model_identity(load_model_config("smollm2-135m-instruct"), served_engine(server))
    assert identity.startswith("served:smollm2-135m-instruct@/")
    assert "127.0.0.1" not in identity  # replicas on other hosts share stored generations


def test_study_with_served_proposers_and_in_process_aggregator(server, tmp_path):
    """One command: proposals from the server, aggregation in-process; stored and scored."""
    data = write_gsm8k(tmp_path / "data")
    urls = tmp_path / "urls.txt"
    urls.write_text(server + "\n")
    run_dir, store = tmp_path / "run", tmp_path / "store"
    overrides = [
        "model=smollm2-135m-instruct-served",
        "method=self_moa",
        "method.k=2",
        "method.temperature=0.7",
        "method.max_tokens=24",
        "method.aggregator=smollm2-135m-instruct",
        "method.aggregator_max_tokens=24",
        f"benchmark.data_dir={data}",
        "benchmark.limit=2",
        "+model.engine_kwargs.api_key_env=HARNESS_TEST_KEY",
        *(f"engine.kwargs.{k}={v}" for k, v in SMALL_KV.items()),
        "logger.mode=offline",
        f"store_dir={store}",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, "HARNESS_SERVE_URLS": str(urls), "HARNESS_TEST_KEY": KEY}
    env["WANDB_DIR"] = str(run_dir)
    proc = subprocess.run(
        [sys.executable, "-m", "harness.run", *overrides],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["store/made"] > 0
    labels = set(metrics["configurations"])
    assert any(label.startswith("self_moa") for label in labels)
    written = [p for d in (run_dir, store) for p in d.rglob("*") if p.is_file()]
    assert written
    for p in written:
        assert KEY.encode() not in p.read_bytes(), f"the API key is in {p}"
    assert KEY not in proc.stdout + proc.stderr
