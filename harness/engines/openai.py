"""Served models behind an OpenAI-compatible API: `vllm serve` replicas or a hosted API.

Settings: `engine.kwargs` of an engine with `kind: openai` (conf/engine/openai.yaml), merged with
the model's `engine_kwargs`, typed and checked in harness.engines.served (`ServedSettings`: base
URLs or a URLs file, the key's variable, the served name, concurrency, timeouts and retries,
n per request, determinism, revision, extra request fields). The replies' system_fingerprint
values are logged and kept in `fingerprints`.
Sample j of `Sampling(n=k, seed=s)` has seed s + j on a vLLM server exactly as in-process.

Outcomes that cannot be checked before the study are counted per request in `outcomes`
(ok, retried, no_usage, tokens_estimated, prompt_too_long, timeout, bad_reply, failed); a request
that fails after its retries comes back as an Output with `error` ("request_failed: ...") and no
completions, its cause logged (run.log), so the rest of the stage is still stored. Every reply is
checked (`check_reply`: a chat completion with n choices; a body that is not JSON, an HTML page or
a reply without choices is a `bad_reply`, retried like a 5xx), and each request's output is
handed to the caller as it arrives (`on_output`), so the replies before a failure are kept.
Auth failures and unknown models stop the run (ConfigError naming the URL): they would fail
every request. `probe()` checks all of that before
the study starts.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from harness.config import EngineConfig, ModelConfig
from harness.engines.base import Completion, Conversation, Output, Sampling, too_long
from harness.engines.replies import BadReply, check_reply, merge, retry_after, split
from harness.engines.served import ServedSettings, api_key, served_settings
from harness.errors import ConfigError
from harness.progress import Progress

log = logging.getLogger(__name__)

REQUEST_FAILED = "request_failed"
CONTEXT = re.compile(r"maximum context length is (\d+)")
PROMPT = re.compile(
    r"(?:contains|resulted in|requested)\s+(?:at least\s+)?(\d+)\s+(?:input\s+)?tok"
)


@dataclass(frozen=True)
class Served:
    """What the servers report about the model: the id to send, its root and its context."""

    model_id: str
    root: str | None  # vLLM: the weights it loaded (a path or a hub id)
    max_model_len: int | None
    owned_by: str | None
    urls: tuple[str, ...]

    @property
    def is_vllm(self) -> bool:
        return self.owned_by == "vllm"


_served: dict[tuple, Served] = {}  # probe results per (urls, model, settings)


def probe(model: ModelConfig, engine: EngineConfig) -> Served:
    """Check every base URL before the study: reachable, key accepted, model served.

    Raises ConfigError naming the URL and the cause. Cached per process.
    """
    import openai

    s = served_settings(model, engine)
    cache_key = (tuple(s.base_urls), model.name, s.served_model, s.api_key_env)
    if cache_key in _served:
        return _served[cache_key]
    key = api_key(s)
    wanted = [s.served_model] if s.served_model else [model.name, model.path]
    found: list[Served] = []
    for url in s.base_urls:
        client = openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=s.probe_timeout_s)
        try:
            listed = {m.id: m for m in client.models.list()}
        except openai.AuthenticationError as e:
            raise ConfigError(
                f"{url}: authentication failed ({e.status_code}); check the key in "
                f"${s.api_key_env or '(none: set engine.kwargs.api_key_env)'}"
            ) from None
        except openai.APITimeoutError:
            raise ConfigError(f"{url}: no answer within {s.probe_timeout_s} s") from None
        except openai.APIConnectionError as e:
            raise ConfigError(f"{url}: unreachable ({cause(e)})") from None
        except openai.APIStatusError as e:
            raise ConfigError(f"{url}: GET /models failed with {e.status_code}") from None
        name = next((w for w in wanted if w and w in listed), None)
        if name is None:
            names = " or ".join(repr(w) for w in wanted if w)
            raise ConfigError(
                f"{url}: does not serve model {names}; it serves "
                f"{sorted(listed)} (set engine.kwargs.served_model or the server's "
                "--served-model-name)"
            )
        m = listed[name]
        extra = m.model_extra or {}
        found.append(
            Served(name, extra.get("root"), extra.get("max_model_len"), m.owned_by, (url,))
        )
    roots = {(f.model_id, f.root) for f in found}
    if len(roots) > 1:
        raise ConfigError(
            f"model {model.name}: the base URLs serve different models {sorted(roots)}; "
            "replicas of one model must serve the same weights"
        )
    served = Served(
        found[0].model_id,
        found[0].root,
        min((f.max_model_len for f in found if f.max_model_len), default=None),
        found[0].owned_by,
        tuple(s.base_urls),
    )
    log.info(
        "%s: served as %r (root %s, context %s) by %s",
        model.name,
        served.model_id,
        served.root,
        served.max_model_len,
        ", ".join(served.urls),
    )
    _served[cache_key] = served
    return served


def cause(e: BaseException) -> str:
    """The innermost cause of a connection error, e.g. 'Connection refused'."""
    while e.__cause__ is not None or e.__context__ is not None:
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    return f"{type(e).__name__}: {e}"


def is_deterministic(model: ModelConfig, engine: EngineConfig) -> bool:
    s = served_settings(model, engine)
    if s.deterministic is not None:
        return s.deterministic
    return probe(model, engine).is_vllm


class OpenAIEngine:
    """Chat completions from OpenAI-compatible servers, concurrent, retried, load-balanced."""

    kind = "openai"
    reads_weights = False  # the server holds the model
    settings: ServedSettings

    def __init__(self, model: ModelConfig, engine: EngineConfig, seed: int = 0):
        import openai

        start = time.perf_counter()
        self.settings = s = served_settings(model, engine)
        self.served = probe(model, engine)
        self.model_name = model.name
        self.deterministic = is_deterministic(model, engine)
        timeout = s.timeout_s
        key = api_key(s)
        self.clients = {
            url: openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=timeout)
            for url in s.base_urls
        }
        self.in_flight = Counter({url: 0 for url in self.clients})
        self.lock = threading.Lock()
        self.outcomes: Counter[str] = Counter()
        self.usage = Counter()  # prompt_tokens, completion_tokens over all requests
        self.per_url: Counter[str] = Counter()  # requests answered by each base URL
        self.fingerprints: set[str] = set()  # system_fingerprint values the replies carried
        self.random = random.Random(seed)  # backoff jitter only
        self.load_s = time.perf_counter() - start
        if not self.deterministic:
            log.warning("%s: served model is not deterministic; seeds do not fix texts", model.name)

    is_deterministic = staticmethod(is_deterministic)

    @staticmethod
    def identity(model: ModelConfig, engine: EngineConfig) -> str:
        """served:<id the server lists>@<the weights it reports>[ rev=<revision>]; no URL, so
        replicas share stored generations."""
        served = probe(model, engine)
        revision = served_settings(model, engine).revision
        base = f"served:{served.model_id}@{served.root or 'unreported'}"
        return base if revision is None else f"{base} rev={revision}"

    # -- one request, with retries and load balancing
    def pick(self, avoid: str | None) -> str:
        with self.lock:
            urls = [u for u in self.clients if u != avoid] or list(self.clients)
            url = min(urls, key=lambda u: self.in_flight[u])
            self.in_flight[url] += 1
            return url

    def count(self, outcome: str, n: int = 1) -> None:
        with self.lock:
            self.outcomes[outcome] += n

    def request(self, conversation: Conversation, p: Sampling, n: int, seed: int | None) -> Output:
        import openai

        s = self.settings
        body: dict[str, Any] = {"return_token_ids": True} if self.served.is_vllm else {}
        body.update(s.extra_body or {})
        args: dict[str, Any] = {
            "model": self.served.model_id,
            "messages": conversation,
            "n": n,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens,
        }
        if seed is not None:
            args["seed"] = seed
        failed_url = None
        for attempt in range(s.max_retries + 1):
            url = self.pick(failed_url)
            wait = None
            try:
                reply = self.clients[url].chat.completions.create(**args, extra_body=body)
                check_reply(reply, n)
                with self.lock:
                    self.per_url[url] += 1
                return self.output(reply, n)
            except (BadReply, ValueError, openai.APIResponseValidationError) as e:
                # a body that is not JSON (ValueError), an HTML page, no or too few choices
                outcome, why = "bad_reply", f"{type(e).__name__}: {e}"[:300]
            except openai.AuthenticationError as e:
                raise ConfigError(f"{url}: authentication failed ({e.status_code})") from None
            except openai.NotFoundError as e:
                raise ConfigError(
                    f"{url}: model {self.served.model_id!r} not found ({e.status_code})"
                ) from None
            except openai.BadRequestError as e:
                out = self.context_error(e)
                if out is not None:
                    self.count("prompt_too_long")
                    return out
                self.count("failed")
                log.warning("%s: request rejected (%s): %s", url, e.status_code, e.message)
                return Output(0, (), f"{REQUEST_FAILED}: {url} answered {e.status_code}")
            except openai.APITimeoutError:
                outcome, why = "timeout", f"no answer within {s.timeout_s} s"
            except openai.APIConnectionError as e:
                outcome, why = "connection_error", cause(e)
            except openai.RateLimitError as e:
                outcome, why = "rate_limited", "429"
                wait = retry_after(e)
            except openai.APIStatusError as e:
                if e.status_code < 500:
                    self.count("failed")
                    return Output(0, (), f"{REQUEST_FAILED}: {url} answered {e.status_code}")
                outcome, why = "server_error", str(e.status_code)
                wait = retry_after(e)
            finally:
                with self.lock:
                    self.in_flight[url] -= 1
            failed_url = url
            if attempt == s.max_retries:
                self.count(outcome)
                log.warning("%s: giving up after %d attempts: %s", url, attempt + 1, why)
                return Output(0, (), f"{REQUEST_FAILED}: {outcome} at {url} ({why})")
            self.count("retried")
            delay = wait if wait is not None else s.backoff_s * 2**attempt
            time.sleep(delay * (1 + 0.25 * self.random.random()))
        raise AssertionError("unreachable")

    def context_error(self, e: Exception) -> Output | None:
        """A 'maximum context length' rejection as the typed too_long Output; else None."""
        text = str(getattr(e, "message", "") or e)
        limit = CONTEXT.search(text)
        if limit is None:
            return None
        prompt = PROMPT.search(text[limit.end() :])
        limit_n = int(limit.group(1))
        return too_long(int(prompt.group(1)) if prompt else limit_n, limit_n)

    def output(self, reply, n: int) -> Output:
        choices = sorted(reply.choices, key=lambda c: c.index)
        texts = [c.message.content or "" for c in choices]
        ids = [(c.model_extra or {}).get("token_ids") for c in choices]
        usage = reply.usage
        outcome = "ok"
        if all(i is not None for i in ids):
            tokens = [len(i) for i in ids]
        elif usage is not None and usage.completion_tokens is not None:
            tokens = split(usage.completion_tokens, texts)
            outcome = "ok" if len(texts) == 1 else "tokens_estimated"
        else:
            tokens = [0] * len(texts)
        if usage is None:
            outcome = "no_usage"
        with self.lock:
            self.outcomes[outcome] += 1
            if getattr(reply, "system_fingerprint", None):
                self.fingerprints.add(reply.system_fingerprint)
            if usage is not None:
                self.usage["prompt_tokens"] += usage.prompt_tokens or 0
                self.usage["completion_tokens"] += usage.completion_tokens or sum(tokens)
        prompt_tokens = usage.prompt_tokens if usage is not None else 0
        completions = tuple(
            Completion(t, k, c.finish_reason)
            for t, k, c in zip(texts, tokens, choices, strict=True)
        )
        return Output(prompt_tokens or 0, completions)

    # -- the Engine contract
    streams = True  # harness.generate stores each output as it arrives (on_output)

    def chat(
        self,
        conversations: list[Conversation],
        params: list[Sampling],
        on_output: Callable[[int, Output], Any] | None = None,
    ) -> list[Output]:
        """All requests at once (up to `concurrency` in flight); outputs in request order.

        `on_output(i, output)` is called (in this thread) as soon as request i is complete, so
        that a later failure or an interrupt cannot lose the replies that came before it.
        """
        if len(conversations) != len(params):
            raise ValueError(f"{len(conversations)} conversations but {len(params)} params")
        jobs = []  # (request index, n, seed)
        for i, p in enumerate(params):
            if self.settings.n_per_request or p.n == 1:
                jobs.append((i, p.n, p.seed))
            else:  # one request per sample, sample j with seed + j
                jobs += [(i, 1, None if p.seed is None else p.seed + j) for j in range(p.n)]
        parts: dict[int, list[Output | None]] = {}  # request -> its jobs' outputs, in order
        place = []  # job -> its position among its request's parts
        for i, _, _ in jobs:
            parts.setdefault(i, []).append(None)
            place.append(len(parts[i]) - 1)
        outputs: list[Output | None] = [None] * len(conversations)
        workers = min(self.settings.concurrency, max(1, len(jobs)))
        pool = ThreadPoolExecutor(workers, thread_name_prefix="openai")
        futures = {
            pool.submit(self.request, conversations[i], params[i], n, seed): k
            for k, (i, n, seed) in enumerate(jobs)
        }
        try:
            with Progress(total=len(futures), desc="Served requests") as bar:
                for future in as_completed(futures):
                    bar.update(1)
                    k = futures[future]
                    i = jobs[k][0]
                    parts[i][place[k]] = future.result()
                    if all(o is not None for o in parts[i]):
                        outputs[i] = merge(parts[i])  # type: ignore[arg-type]
                        if on_output is not None:
                            on_output(i, outputs[i])
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            self.close()  # in-flight requests end now, not after their timeout
            raise
        pool.shutdown()
        log.info(
            "%s: %d requests; outcomes %s; usage %s; fingerprints %s",
            self.model_name,
            len(jobs),
            dict(self.outcomes),
            dict(self.usage),
            sorted(self.fingerprints) or "none",
        )
        return outputs  # type: ignore[return-value]

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self.clients = {}
