"""The served engine against a local stub server that answers some requests with a malformed
reply (issue 24): the good replies of the stage are stored, the bad one is a counted
`request_failed` outcome with its cause in the log, and a rerun makes only the missing one."""

from __future__ import annotations

import json
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.config import EngineConfig, ModelConfig
from harness.engines import Sampling
from harness.engines import openai as served
from harness.generate import Generator, ModelSlot
from harness.store import Store
from harness.tables import stage_table

TINY = ModelConfig(name="tiny", path="org/tiny")
COMPLETION = {"id": "x", "object": "chat.completion", "created": 0, "model": "tiny"}

# what the server answers to a request whose message holds "BAD": (status, content type, body)
MALFORMED = {
    "not JSON": (200, "application/json", b'{"choices": [{"inde'),
    "HTML error page": (200, "text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    "no choices": (200, "application/json", json.dumps(COMPLETION).encode()),
    "choices null": (200, "application/json", json.dumps(COMPLETION | {"choices": None}).encode()),
    "a JSON list": (200, "application/json", b"[1, 2, 3]"),
    "too few choices": (200, "application/json", json.dumps(COMPLETION | {"choices": []}).encode()),
    "a 500": (500, "application/json", b'{"error": {"message": "boom", "code": 500}}'),
}


class Stub:
    def __init__(self, mode: str):
        self.mode, self.broken, self.delay_s = mode, True, 0.0
        self.requests: list[str] = []
        handler = self.handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda *a: None  # a client that went away
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def handler(stub):  # noqa: N805 - the stub is the handler class's closure
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send(self, status: int, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                model = {"id": "tiny", "object": "model", "owned_by": "vllm", "root": "/m/tiny"}
                self.send(200, "application/json", json.dumps({"data": [model]}).encode())

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                text = body["messages"][-1]["content"]
                stub.requests.append(text)
                if "SLOW" in text:
                    time.sleep(stub.delay_s)
                if "BAD" in text and stub.broken:
                    return self.send(*MALFORMED[stub.mode])
                choices = [
                    {
                        "index": j,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": f"answer to {text} #{j}"},
                    }
                    for j in range(body.get("n", 1))
                ]
                usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
                reply = COMPLETION | {"choices": choices, "usage": usage}
                self.send(200, "application/json", json.dumps(reply).encode())

        return Handler

    def close(self) -> None:
        self.httpd.shutdown()
        served._served.clear()


def engine(url: str) -> EngineConfig:
    kwargs = {"base_urls": [url], "max_retries": 1, "backoff_s": 0.01, "probe_timeout_s": 2}
    return EngineConfig(name="openai", kind="openai", kwargs=kwargs)


def stage(url: str, store_dir, texts: list[str]):
    gen = Generator(ModelSlot({"tiny": TINY}, engine(url)), Store(store_dir), seed=0)
    requests = [
        ([{"role": "user", "content": t}], Sampling(n=1, seed=i)) for i, t in enumerate(texts)
    ]
    try:
        outs = gen.stage("propose", "tiny", requests)
    finally:
        gen.slot.close()
    return gen.stages[-1], outs


TEXTS = ["q1", "q2", "q3 BAD", "q4", "q5", "q6"]


@pytest.mark.parametrize("mode", sorted(MALFORMED))
def test_one_malformed_reply_of_six_stores_five_and_a_rerun_makes_only_it(tmp_path, mode, caplog):
    stub = Stub(mode)
    try:
        with caplog.at_level("WARNING"):
            stats, outs = stage(stub.url, tmp_path / "store", TEXTS)
        assert len(Store(tmp_path / "store")) == 5  # the good replies are stored
        assert stats.made == 5 and stats.failed == {"request_failed": 1} and stats.skipped == 0
        bad = outs[2][0]
        assert bad.completions == () and bad.error.startswith("request_failed: ")
        assert ("bad_reply" if mode != "a 500" else "server_error") in bad.error
        assert "giving up after 2 attempts" in caplog.text  # the cause, in run.log
        table = stage_table([stats]).splitlines()
        assert "too long" in table[0] and "failed" in table[0]
        assert table[2].split()[-4:] == ["0", "request_failed", "1", "0"]  # too long, failed, cut
        stub.broken, stub.requests = False, []
        again, outs = stage(stub.url, tmp_path / "store", TEXTS)
        assert stub.requests == ["q3 BAD"]  # only the missing one is asked again
        assert (again.found, again.made, again.failed) == (5, 1, {})
        assert len(Store(tmp_path / "store")) == 6
        assert all(o.completions for o, _ in outs)
    finally:
        stub.close()


def test_replies_that_arrived_survive_an_interrupt_in_the_middle_of_a_stage(tmp_path):
    stub = Stub("a 500")
    stub.delay_s = 30
    previous = signal.signal(signal.SIGALRM, signal.default_int_handler)
    signal.setitimer(signal.ITIMER_REAL, 1.5)  # Ctrl-C while one request is still out
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            stage(stub.url, tmp_path / "store", ["q1", "q2", "q3 SLOW", "q4", "q5", "q6"])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        stub.close()
    assert time.monotonic() - start < 10  # not held until the slow request's answer
    assert len(Store(tmp_path / "store")) == 5
