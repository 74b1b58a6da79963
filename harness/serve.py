"""One `vllm serve` of a model config, with an engine preset's settings as server flags.

The server is what `engine=openai` talks to (harness.engines.openai). The model is prepared
first (PyPI GGUF models), served under its config name, and started with the same vLLM settings
as the in-process engine (`engine.kwargs` <- the model's `engine_kwargs`, dtype resolved), so
equal seeds give equal texts in both.

Usage:
    python -m harness.serve --model smollm2-135m-instruct --engine cpu --port 8000
    python -m harness.serve --model qwen2-7b-instruct --engine gpu --port 8000 -- --api-key $KEY
    python -m harness.serve --model smollm2-135m-instruct --print   # the command, not run
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import urllib.error
import urllib.request

from harness.config import EngineConfig, ModelConfig, load_model_config
from harness.engines.factory import load_engine_config

# in-process only: the server runs its own engine process
IN_PROCESS_ONLY = {"VLLM_ENABLE_V1_MULTIPROCESSING"}


def flags(kwargs: dict) -> list[str]:
    """vllm.LLM keyword arguments as `vllm serve` flags (True: --x, False: --no-x)."""
    out = []
    for key, value in kwargs.items():
        flag = "--" + key.replace("_", "-")
        if value is None:
            continue
        if value is True:
            out.append(flag)
        elif value is False:
            out.append("--no-" + key.replace("_", "-"))
        elif isinstance(value, dict | list):
            out += [flag, json.dumps(value)]
        else:
            out += [flag, str(value)]
    return out


def command(
    model: ModelConfig, engine: EngineConfig, port: int, host: str = "127.0.0.1"
) -> tuple[list[str], dict[str, str]]:
    """The server's argv and extra environment."""
    from harness.engines.vllm import engine_kwargs, model_source

    kwargs = engine_kwargs(model, engine)
    kwargs.pop("distributed_executor_backend", None)  # the server picks its own executor
    if model.revision is not None and model.gguf is None:
        kwargs.setdefault("revision", model.revision)
    if model.trust_remote_code:
        kwargs["trust_remote_code"] = True
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    argv += ["--model", model_source(model), "--served-model-name", model.name]
    argv += ["--host", host, "--port", str(port)]
    if model.chat_template is not None:
        argv += ["--chat-template", model.chat_template]
    env = {k: str(v) for k, v in engine.env.items() if k not in IN_PROCESS_ONLY}
    return argv + flags(kwargs), env


def wait_ready(base_url: str, timeout_s: float = 600.0, process=None) -> float:
    """Seconds until GET <base_url>/models answers (200, or 401/403 behind a key); raises if
    the process dies or time runs out."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server for {base_url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=5) as r:
                if r.status == 200:
                    return time.perf_counter() - start
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):  # it answers, behind an API key: up
                return time.perf_counter() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1.0)
    raise TimeoutError(f"{base_url} not ready after {timeout_s:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="a conf/model name")
    ap.add_argument("--engine", default="cpu", help="a conf/engine preset with kind vllm")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--print", action="store_true", help="print the command instead of running it")
    args, extra = ap.parse_known_args()
    extra = [x for x in extra if x != "--"]
    argv, env = command(
        load_model_config(args.model), load_engine_config(args.engine), args.port, args.host
    )
    argv += extra
    if args.print:
        print(" ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()), shlex.join(argv))
        return
    os.execve(argv[0], argv, {**os.environ, **env})


if __name__ == "__main__":
    main()
