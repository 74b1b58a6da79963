"""In-process vLLM: one resident model, one batched `LLM.chat` call per stage.

Every conversation goes through the model's own chat template (or the model config's override).
vLLM gives sample j of `SamplingParams(n=k, seed=s)` the seed s + j (see harness.engines.base).
A conversation longer than the context is not sent: its Output is `too_long`.

`dtype: by_cpu` (conf/engine/cpu.yaml) picks bfloat16 where the CPU has `avx512_bf16` or AMX
(`amx_bf16`) and float32 elsewhere (on AVX2-only CPUs bfloat16 is ~3.5x slower); any other value
overrides it. The chosen dtype is logged and is part of the model identity in store keys, except
float32 and "auto" (keys made before dtypes were recorded stay valid).

Lifecycle (harness.engines.lifecycle): on CUDA a load first checks that the devices have room
(else one line naming what holds the memory); `close` ends the engine for real (engine core shut
down, its child process exited, distributed state torn down, memory trimmed) and waits until the
memory is back near the level before the load.
Templates (harness.engines.templates): at load the chat template is probed for a system role;
where it has none, system text is folded into the first user turn (`Output.folded`); a template
that raises on one conversation gives that conversation a `template_error` Output.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

from harness.config import EngineConfig, ModelConfig
from harness.engines import lifecycle
from harness.engines.base import (
    TEMPLATE_ERROR,
    Completion,
    Conversation,
    Output,
    Sampling,
    template_error,
    too_long,
)
from harness.engines.templates import accepts_system, fold_system, has_system, read_template
from harness.progress import Progress

log = logging.getLogger(__name__)


def model_source(model: ModelConfig) -> str:
    """What vLLM loads: the prepared local folder of a PyPI GGUF model, or the configured path."""
    if model.gguf is not None:
        from harness.models import prepare

        return str(prepare(model.gguf))
    return os.path.expanduser(model.path)


def model_identity(model: ModelConfig) -> str:
    """The model part of a generation key: GGUF checksum, folder checksum or hub revision."""
    if model.gguf is not None:
        from harness.models import model_path

        return f"gguf:{model_path(model.gguf).name}"  # <name>-<sha256>-tf<transformers version>
    folder = Path(model.path).expanduser()
    if folder.is_dir():
        digest = hashlib.sha256()
        for f in sorted(p for p in folder.iterdir() if p.is_file()):
            digest.update(f"{f.name}:{f.stat().st_size}\n".encode())
            if f.suffix == ".json":
                digest.update(f.read_bytes())
        return f"local:{folder.resolve()}:{digest.hexdigest()[:16]}"
    return f"hub:{model.path}@{model.revision}"


BY_CPU = "by_cpu"
UNMARKED_DTYPES = (
    "float32",
    "float",
    "auto",
    None,
)  # identities without a dtype (older store keys)


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((x for x in text.splitlines() if x.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def cpu_dtype(flags: set[str] | None = None) -> str:
    """bfloat16 where the CPU computes it natively (avx512_bf16 or AMX), else float32."""
    flags = cpu_flags() if flags is None else flags
    return "bfloat16" if flags & {"avx512_bf16", "amx_bf16"} else "float32"


def resolve_dtype(kwargs: dict) -> str | None:
    dtype = kwargs.get("dtype")
    return cpu_dtype() if dtype == BY_CPU else dtype


AUTO = "auto"


def compile_choice(engine: EngineConfig, planned_tokens: float | None) -> tuple[bool, str]:
    """`enforce_eager: auto` decided by the planned work: (enforce_eager, why).

    Compiling (torch.compile) costs seconds at every load and saves a share of every decoded
    token's time; it pays when a load decodes at least `engine.compile_crossover_tokens`
    (measured by scripts/bench.py --compile). No planned work known: eager.
    """
    crossover = engine.compile_crossover_tokens
    if planned_tokens is None:
        return True, "no planned work known: eager"
    planned = f"{planned_tokens:.0f} planned decode tokens"
    if planned_tokens >= crossover:
        return False, f"{planned} >= crossover {crossover}: compiled"
    return True, f"{planned} < crossover {crossover}: eager"


def engine_kwargs(model: ModelConfig, engine: EngineConfig) -> dict:
    """What goes to vllm.LLM: engine.kwargs <- model.engine_kwargs, the dtype resolved;
    `enforce_eager: auto` still undecided (no planned work given to make_engine): eager."""
    kwargs = {**engine.kwargs, **model.engine_kwargs}
    if "dtype" in kwargs:
        kwargs["dtype"] = resolve_dtype(kwargs)
    if kwargs.get("enforce_eager") == AUTO:
        kwargs["enforce_eager"], why = compile_choice(engine, None)
        log.debug("%s: enforce_eager auto -> %s (%s)", model.name, kwargs["enforce_eager"], why)
    return kwargs


class VllmEngine:
    kind = "vllm"
    reads_weights = True

    def __init__(self, model: ModelConfig, engine: EngineConfig, seed: int = 0):
        for key, value in engine.env.items():  # must precede the first `import vllm`
            os.environ[key] = str(value)
        source = model_source(model)
        kwargs = engine_kwargs(model, engine)
        self.enforce_eager = kwargs.get("enforce_eager")
        self.dtype = kwargs.get("dtype", "auto")
        if engine.kwargs.get("dtype") == BY_CPU and "dtype" not in model.engine_kwargs:
            log.info(
                "dtype %s chosen from the CPU flags (override: engine.kwargs.dtype)", self.dtype
            )
        if model.revision is not None and model.gguf is None:
            kwargs.setdefault("revision", model.revision)
        log.info("loading %s from %s with %s", model.name, source, kwargs)
        start = time.perf_counter()
        from vllm import LLM  # imported before the level is read: the import is no model's

        devices = lifecycle.cuda_devices(int(kwargs.get("tensor_parallel_size") or 1))
        lifecycle.check_room(model.name, kwargs, source, devices)
        self.footprint = lifecycle.Footprint.before_load(model.name, devices)
        self.llm = LLM(model=source, seed=seed, trust_remote_code=model.trust_remote_code, **kwargs)
        self.footprint.loaded()
        self.load_s = time.perf_counter() - start
        self.model_name = model.name
        self.deterministic = True  # seeded sampling repeats exactly
        self.chat_template = read_template(model.chat_template)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = self.llm.llm_engine.model_config.max_model_len
        self.system_role, why = accepts_system(self.render)
        if not self.system_role:
            log.warning(
                "%s: its chat template takes no system message (%s): system text goes at the "
                "top of the first user turn, counted as system_folded", model.name, why,
            )  # fmt: skip
        log.info(
            "loaded %s in %.1f s (max_model_len %d)", model.name, self.load_s, self.max_model_len
        )

    @staticmethod
    def identity(model: ModelConfig, engine: EngineConfig) -> str:
        """The weights' identity, plus the dtype unless it is float32 or auto."""
        dtype = engine_kwargs(model, engine).get("dtype")
        base = model_identity(model)
        if model.chat_template is not None:  # another template, other prompts: other keys
            text = read_template(model.chat_template) or ""
            base += f" template={hashlib.sha256(text.encode()).hexdigest()[:12]}"
        return base if dtype in UNMARKED_DTYPES else f"{base} dtype={dtype}"

    @staticmethod
    def check(model: ModelConfig, engine: EngineConfig) -> None:
        """The engine arguments against vLLM's EngineArgs, before loading (ConfigError)."""
        from harness.engines.vllm_args import check

        for key, value in engine.env.items():  # must precede the first `import vllm`
            os.environ[key] = str(value)
        check(model, engine, engine_kwargs(model, engine))

    @staticmethod
    def is_deterministic(model: ModelConfig, engine: EngineConfig) -> bool:
        """Sample j of a seeded request repeats exactly (vLLM seeds each sample)."""
        return True

    def render(self, conversation: Conversation) -> str:
        return self.tokenizer.apply_chat_template(
            conversation,
            chat_template=self.chat_template,
            tokenize=False,
            add_generation_prompt=True,
        )

    def prompt_tokens(self, conversation: Conversation) -> int:
        text = self.render(conversation)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def chat(self, conversations: list[Conversation], params: list[Sampling]) -> list[Output]:
        from vllm import SamplingParams

        if len(conversations) != len(params):
            raise ValueError(f"{len(conversations)} conversations but {len(params)} params")
        outputs: list[Output | None] = [None] * len(conversations)
        folded = [not self.system_role and has_system(c) for c in conversations]
        conversations = [fold_system(c) if f else c for c, f in zip(conversations, folded)]  # noqa: B905
        todo = []
        for i, conversation in enumerate(conversations):
            try:
                n = self.prompt_tokens(conversation)
            except Exception as e:  # the template refuses this conversation: its outcome only
                outputs[i] = template_error(e)
                continue
            if n >= self.max_model_len:  # vLLM needs room for at least one new token
                outputs[i] = too_long(n, self.max_model_len)
            else:
                todo.append(i)
        if refused := [o for o in outputs if o is not None and o.error == TEMPLATE_ERROR]:
            log.warning(
                "%s: the chat template raised on %d of %d conversations (%s)",
                self.model_name, len(refused), len(conversations), refused[0].detail,
            )  # fmt: skip
        if too := sum(o is not None and o.too_long for o in outputs):
            log.warning(
                "%s: %d of %d prompts exceed the context and were not sent",
                self.model_name,
                too,
                len(conversations),
            )
        if todo:
            results = self.llm.chat(
                [conversations[i] for i in todo],
                [
                    SamplingParams(
                        n=params[i].n,
                        temperature=params[i].temperature,
                        top_p=params[i].top_p,
                        max_tokens=params[i].max_tokens,
                        seed=params[i].seed,
                    )
                    for i in todo
                ],
                chat_template=self.chat_template,
                use_tqdm=Progress,  # a bar on a terminal, bounded log lines elsewhere
            )
            for i, result in zip(todo, results, strict=True):
                completions = tuple(
                    Completion(c.text, len(c.token_ids), c.finish_reason)
                    for c in sorted(result.outputs, key=lambda c: c.index)
                )
                outputs[i] = Output(len(result.prompt_token_ids), completions, folded=folded[i])
        return outputs  # type: ignore[return-value]

    def close(self) -> None:
        """End the model for real (see harness.engines.lifecycle) before the next one loads."""
        if not hasattr(self, "llm"):
            return
        held = [self.llm]  # the only reference: the memory can go once `shutdown` drops it
        lifecycle.empty_tokenizer_pool(self.tokenizer)
        del self.llm, self.tokenizer

        def shutdown() -> None:
            held.pop().llm_engine.engine_core.shutdown()

        self.footprint.end(shutdown)
