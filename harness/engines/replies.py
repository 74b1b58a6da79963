"""Replies of an OpenAI-compatible server, checked and put together (harness.engines.openai)."""

from __future__ import annotations

from typing import Any

from harness.engines.base import Output


class BadReply(Exception):
    """A reply that is not a chat completion of the request (checked before it is used)."""


def check_reply(reply: Any, n: int) -> None:
    """Raise BadReply unless `reply` holds `n` choices, each with a text (or none) message."""
    choices = getattr(reply, "choices", None)
    if not isinstance(choices, list):
        what = f"a {type(reply).__name__}" if not isinstance(reply, str) else repr(reply[:80])
        raise BadReply(f"not a chat completion (no choices list): {what}")
    if len(choices) != n:
        raise BadReply(f"{len(choices)} choices for n={n}")
    for c in choices:
        message = getattr(c, "message", None)
        content = getattr(message, "content", None)
        if message is None or not (content is None or isinstance(content, str)):
            raise BadReply(f"choice {getattr(c, 'index', '?')} has no message text")
        if not isinstance(getattr(c, "index", None), int):
            raise BadReply("a choice without an index")


def merge(parts: list[Output]) -> Output:
    """One request's output from its parts (one per sample without n support)."""
    bad = next((o for o in parts if o.error), None)
    if bad is not None:
        return bad
    return Output(parts[0].prompt_tokens, tuple(c for o in parts for c in o.completions))


def split(total: int, texts: list[str]) -> list[int]:
    """`total` tokens shared among texts in proportion to their length (sums to `total`)."""
    if len(texts) == 1:
        return [total]
    chars = [len(t) for t in texts]
    if sum(chars) == 0:
        return [total // len(texts)] * len(texts)
    shares = [total * c // sum(chars) for c in chars]
    shares[0] += total - sum(shares)
    return shares


def retry_after(e: Exception) -> float | None:
    response = getattr(e, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return min(60.0, float(value)) if value is not None else None
    except ValueError:
        return None
