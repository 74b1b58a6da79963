"""The served engine (harness.engines.openai) against a scripted local HTTP server: retries,
load balancing, token accounting and every bad input, in seconds. The same engine against a
real `vllm serve` is in tests/test_serve.py (slow)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.config import EngineConfig, ModelConfig
from harness.engines import Sampling
from harness.engines import openai as served
from harness.engines.factory import engine_config, make_engine, model_identity, nondeterministic
from harness.errors import ConfigError

KEY = "sk-test-not-a-real-key-7f3a"
HI = [{"role": "user", "content": "hi"}]


class Script:
    """What the fake server does: a queue of statuses per path, and what it was sent."""

    def __init__(self, owned_by: str = "vllm", key: str | None = None):
        self.owned_by, self.key = owned_by, key
        self.statuses: list[int] = []  # consumed by chat requests; empty -> 200
        self.requests: list[dict] = []
        self.usage = True
        self.delay_s = 0.0
        self.context = 100


def handler(script: Script):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def reply(self, status: int, body: dict, headers: dict | None = None):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def authorised(self) -> bool:
            if script.key and self.headers.get("Authorization") != f"Bearer {script.key}":
                self.reply(401, {"error": {"message": "bad key", "code": 401}})
                return False
            return True

        def do_GET(self):
            if not self.authorised():
                return
            model = {
                "id": "tiny",
                "object": "model",
                "owned_by": script.owned_by,
                "root": "/models/tiny",
                "max_model_len": script.context,
            }
            self.reply(200, {"object": "list", "data": [model]})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if not self.authorised():
                return
            script.requests.append(body)
            time.sleep(script.delay_s)
            status = script.statuses.pop(0) if script.statuses else 200
            if status != 200:
                headers = {"Retry-After": "0"} if status == 429 else {}
                return self.reply(status, {"error": {"message": "busy", "code": status}}, headers)
            prompt = len(body["messages"][-1]["content"].split())
            if prompt >= script.context:
                return self.reply(
                    400,
                    {
                        "error": {
                            "message": (
                                "This model's maximum context length is "
                                f"{script.context} tokens. However, "
                                f"your prompt contains {prompt} input tokens"
                            ),
                            "code": 400,
                        }
                    },
                )
            n, seed = body.get("n", 1), body.get("seed")
            choices = [
                {
                    "index": j,
                    "finish_reason": "stop",
                    "token_ids": [1] * (j + 2),
                    "message": {"role": "assistant", "content": f"seed {seed} sample {j}"},
                }
                for j in range(n)
            ]
            out = {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "tiny",
                "choices": choices,
            }
            if script.usage:
                out["usage"] = {
                    "prompt_tokens": prompt,
                    "completion_tokens": 2 * n + n * (n - 1) // 2,
                    "total_tokens": 0,
                }
            self.reply(200, out)

    return Handler


@pytest.fixture
def server():
    """Start fake servers on demand: server(script) -> base URL."""
    started = []

    def start(script: Script) -> str:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler(script))
        httpd.handle_error = lambda *a: None  # a client that timed out closed the socket
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        started.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}/v1"

    yield start
    for httpd in started:
        httpd.shutdown()
    served._served.clear()


def config(*urls: str, **kwargs) -> EngineConfig:
    return EngineConfig(
        name="openai",
        kind="openai",
        kwargs={"base_urls": list(urls), "backoff_s": 0.01, "probe_timeout_s": 2, **kwargs},
    )


TINY = ModelConfig(name="tiny", path="org/tiny")


def test_n_and_seed_are_sent_and_outputs_keep_request_order(server):
    script = Script()
    eng = make_engine(TINY, config(server(script)))
    outs = eng.chat([HI, HI], [Sampling(n=3, seed=10, temperature=0.7), Sampling(n=1, seed=20)])
    assert [c.text for c in outs[0].completions] == [f"seed 10 sample {j}" for j in range(3)]
    assert outs[1].completions[0].text == "seed 20 sample 0"
    assert sorted(r["n"] for r in script.requests) == [1, 3]
    assert all(r["return_token_ids"] for r in script.requests)  # exact per-sample token counts


def test_tokens_come_from_token_ids_and_usage(server):
    eng = make_engine(TINY, config(server(Script())))
    out = eng.chat([HI], [Sampling(n=2, seed=1)])[0]
    assert [c.tokens for c in out.completions] == [2, 3] and out.prompt_tokens == 1
    assert eng.usage == {"prompt_tokens": 1, "completion_tokens": 5}


def test_without_n_support_each_sample_is_a_request_with_seed_plus_j(server):
    script = Script()
    eng = make_engine(TINY, config(server(script), n_per_request=False))
    out = eng.chat([HI], [Sampling(n=3, seed=7)])[0]
    assert [c.text for c in out.completions] == [f"seed {7 + j} sample 0" for j in range(3)]
    assert len(script.requests) == 3


def test_429_and_5xx_are_retried_with_backoff(server):
    script = Script()
    script.statuses = [429, 503, 500]
    eng = make_engine(TINY, config(server(script), max_retries=3))
    out = eng.chat([HI], [Sampling(seed=1)])[0]
    assert out.error is None and out.completions
    assert eng.outcomes["retried"] == 3 and eng.outcomes["ok"] == 1


def test_a_request_failing_after_retries_is_a_counted_outcome_not_a_crash(server):
    script = Script()
    script.statuses = [500] * 3
    eng = make_engine(TINY, config(server(script), max_retries=1))
    outs = eng.chat([HI, HI], [Sampling(seed=1), Sampling(seed=2)])
    failed = [o for o in outs if o.error]
    assert len(failed) == 1 and failed[0].error.startswith("request_failed: server_error")
    assert failed[0].completions == () and eng.outcomes["server_error"] == 1


def test_replicas_share_the_load_and_a_dead_one_is_avoided(server):
    a, b = Script(), Script()
    a.delay_s = b.delay_s = 0.05
    eng = make_engine(TINY, config(server(a), server(b), concurrency=8))
    eng.chat([HI] * 16, [Sampling(seed=i) for i in range(16)])
    assert len(a.requests) >= 4 and len(b.requests) >= 4
    assert sum(eng.per_url.values()) == 16


def test_reply_without_usage_is_counted(server):
    script = Script()
    script.usage = False
    eng = make_engine(TINY, config(server(script)))
    out = eng.chat([HI], [Sampling(seed=1)])[0]
    assert out.completions and eng.outcomes["no_usage"] == 1


def test_prompt_over_the_server_context_is_the_typed_too_long_output(server):
    eng = make_engine(TINY, config(server(Script())))
    long = [{"role": "user", "content": "word " * 150}]
    outs = eng.chat([HI, long], [Sampling(seed=1)] * 2)
    assert outs[0].completions and outs[1].too_long
    assert outs[1].prompt_tokens == 150 and outs[1].context_limit == 100
    assert eng.outcomes["prompt_too_long"] == 1


def test_timeout_is_retried_then_counted(server):
    script = Script()
    script.delay_s = 1.0
    eng = make_engine(TINY, config(server(script), timeout_s=0.2, max_retries=1))
    out = eng.chat([HI], [Sampling(seed=1)])[0]
    assert out.error.startswith("request_failed: timeout") and eng.outcomes["timeout"] == 1


def test_probe_names_the_url_when_unreachable():
    with pytest.raises(ConfigError, match=r"http://127.0.0.1:9/v1: unreachable"):
        model_identity(TINY, config("http://127.0.0.1:9/v1"))


def test_probe_names_the_url_and_the_served_models_on_a_wrong_name(server):
    url = server(Script())
    with pytest.raises(ConfigError, match=rf"{url}: does not serve model 'other'.*\['tiny'\]"):
        model_identity(ModelConfig(name="other", path="org/other"), config(url))


def test_auth_failure_is_a_config_error_and_never_shows_the_key(server, monkeypatch):
    url = server(Script(key=KEY))
    monkeypatch.setenv("TEST_SERVE_KEY", "wrong-key-value")
    with pytest.raises(ConfigError, match="authentication failed") as e:
        model_identity(TINY, config(url, api_key_env="TEST_SERVE_KEY"))
    assert "wrong-key-value" not in str(e.value) and "TEST_SERVE_KEY" in str(e.value)
    monkeypatch.setenv("TEST_SERVE_KEY", KEY)
    assert (
        make_engine(TINY, config(url, api_key_env="TEST_SERVE_KEY"))
        .chat([HI], [Sampling()])[0]
        .completions
    )


def test_unset_key_variable_is_a_config_error(server):
    with pytest.raises(ConfigError, match="NO_SUCH_KEY_VAR.*unset"):
        make_engine(TINY, config(server(Script()), api_key_env="NO_SUCH_KEY_VAR"))


def test_unknown_setting_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown settings.*base_url"):
        model_identity(TINY, config(base_url="http://x"))


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"concurrency": "many"}, r"engine.kwargs.concurrency .*: Value 'many'"),
        ({"deterministic": "maybe"}, r"engine.kwargs.deterministic .*: Value 'maybe'"),
        ({"timeout_s": "soon"}, r"engine.kwargs.timeout_s"),
        ({"concurrency": 0}, r"engine.kwargs.concurrency must be a finite number >= 1 \(got 0\)"),
    ],
)
def test_a_wrongly_typed_or_impossible_setting_is_a_config_error(setting, message):
    """Checked before any request (no server at this URL): the key and the value named."""
    with pytest.raises(ConfigError, match=message):
        model_identity(TINY, config("http://127.0.0.1:9/v1", **setting))


def test_settings_are_typed_after_the_check(tmp_path):
    from harness.engines.served import served_settings

    urls = tmp_path / "urls"
    urls.write_text("http://b/v1/\nhttp://a/v1\n")
    s = served_settings(TINY, config("http://a/v1", urls_file=str(urls), concurrency="4"))
    assert s.base_urls == ["http://a/v1", "http://b/v1"] and s.concurrency == 4
    assert s.n_per_request is True and s.deterministic is None


def test_identity_is_the_served_model_and_root_not_the_url(server):
    one, two = server(Script()), server(Script())
    assert model_identity(TINY, config(one)) == "served:tiny@/models/tiny"
    assert model_identity(TINY, config(two)) == model_identity(TINY, config(one, two))
    assert model_identity(TINY, config(one, revision="bf16")) == "served:tiny@/models/tiny rev=bf16"


def test_hosted_non_vllm_models_are_marked_nondeterministic(server):
    hosted, local = server(Script(owned_by="openai")), server(Script())
    models = {"h": ModelConfig(name="tiny", path="org/tiny", engine="openai")}
    models["h"].engine_kwargs = {"base_urls": [hosted]}
    assert nondeterministic(models, EngineConfig(name="cpu")) == ["h"]
    assert not make_engine(TINY, config(hosted)).deterministic
    assert make_engine(TINY, config(local)).deterministic


def test_a_model_can_name_its_own_engine_preset():
    run_engine = EngineConfig(name="cpu", kwargs={"dtype": "float32"})
    own = ModelConfig(name="p", path="org/p", engine="openai")
    assert engine_config(own, run_engine).kind == "openai"
    assert engine_config(ModelConfig(name="a", path="org/a"), run_engine) is run_engine
    with pytest.raises(ConfigError, match="unknown engine 'nope'"):
        engine_config(ModelConfig(name="a", path="org/a", engine="nope"), run_engine)


def test_a_study_through_served_models_stores_scores_and_never_writes_the_key(
    server, tmp_path, data_dir, monkeypatch, caplog
):
    """harness.run's study with every model served (the scripted server): records, metrics and
    store are written as with in-process models; the key appears nowhere."""
    from harness.plan import checked_run, compose
    from harness.run import study

    url = server(Script(key=KEY))
    monkeypatch.setenv("TEST_SERVE_KEY", KEY)
    run = checked_run(
        compose(
            "engine=openai",
            f"engine.kwargs.base_urls=[{url}]",
            "engine.kwargs.api_key_env=TEST_SERVE_KEY",
            "model.name=tiny",
            "model.gguf=null",
            "model.path=org/tiny",
            "method=self_moa",
            "method.k=2",
            "method.temperature=0.7",
            f"benchmark.data_dir={data_dir}",
            "benchmark.limit=2",
            "logger.mode=disabled",
            f"store_dir={tmp_path / 'store'}",
        ),
        run_dir=str(tmp_path / "run"),
    )
    with caplog.at_level("DEBUG"):
        metrics = study(run)
    assert metrics.made == 2 * (1 + 2) + 2  # greedy + 2 samples, then 2 aggregations
    assert metrics.nondeterministic_models == []
    assert (tmp_path / "run" / "records.jsonl").read_text().count('"score"') > 0
    for p in [*tmp_path.rglob("*")]:
        if p.is_file():
            assert KEY.encode() not in p.read_bytes(), p
    assert KEY not in caplog.text
