"""What every engine speaks: conversations in, typed outputs back.

Contract (what `harness.generate` relies on, and what the fake engine in the tests mimics):
    engine = make_engine(model_cfg, engine_cfg, seed)  # loads; engine.load_s = seconds
    outs = engine.chat(conversations, params)          # len(outs) == len(conversations)
    outs[i].completions                                # params[i].n completions, in sample order
    engine.close()                                     # releases the model before the next loads
`Sampling(n=k, seed=s)`: sample j is generated with seed s + j, so the k samples of an item
repeat exactly and sample j does not depend on k.
A conversation that cannot be sent (longer than the context) is not an exception: its Output has
no completions, `error` names the outcome ("prompt_too_long") and the typed fields say why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

Conversation = list[dict[str, str]]

PROMPT_TOO_LONG = "prompt_too_long"

# engine kind -> "module:class" (loaded by harness.engines.factory); a new kind is one line here
KINDS = {
    "vllm": "harness.engines.vllm:VllmEngine",
    "openai": "harness.engines.openai:OpenAIEngine",
    "replay": "harness.engines.replay:ReplayEngine",
}


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
        return self.error


def too_long(prompt_tokens: int, context_limit: int) -> Output:
    return Output(prompt_tokens, (), PROMPT_TOO_LONG, context_limit)


class Engine(Protocol):
    model_name: str
    load_s: float

    def chat(self, conversations: list[Conversation], params: list[Sampling]) -> list[Output]: ...

    def close(self) -> None: ...
