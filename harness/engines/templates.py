"""Chat templates: does a model's template take a system message, and folding it in where not.

Aggregation puts its block in a system message (harness.methods.prompts), and some templates
refuse a system role (gemma-2's raises "System role not supported") or drop it silently. When a
model loads, `accepts_system` renders a probe [system, user] conversation: the template accepts a
system message only if it renders without an error and the system text appears in the result.
Where it does not, `fold_system` moves the system text, unchanged, to the top of the first user
turn (a blank line between), and the run counts each folded request (StageStats.folded, the
`system_folded` event of a record, `template/system_folded` in metrics.json and W&B).

A template that raises on one conversation is an outcome of that request (`template_error`:
the item's record says why), never a crash of the batch.

`chat_template` in a model config is the template's text, or a file (`.jinja`) read from the
path given: absolute, `~/...`, or relative to the project root (e.g.
`conf/templates/no_system_role.jinja`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.engines.base import Conversation

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROBE_TEXT = "harness-system-probe-4c1e"


def read_template(value: str | None) -> str | None:
    """The template's text: `value` itself, or the file it names (a path ending in .jinja)."""
    if value is None or "{" in value or not value.strip().endswith(".jinja"):
        return value
    path = Path(value.strip()).expanduser()
    if not path.is_absolute():
        path = PROJECT_ROOT / path
    return path.read_text()


def accepts_system(render: Callable[[Conversation], str]) -> tuple[bool, str]:
    """Whether `render` (a model's chat template) keeps a system message, and why not."""
    probe = [{"role": "system", "content": PROBE_TEXT}, {"role": "user", "content": "Hello."}]
    try:
        text = render(probe)
    except Exception as e:  # jinja2's TemplateError, or a template's own raise_exception
        return False, f"it raises {type(e).__name__}: {e}"
    if PROBE_TEXT not in text:
        return False, "it drops the system text"
    return True, ""


def has_system(conversation: Conversation) -> bool:
    return any(m["role"] == "system" for m in conversation)


def fold_system(conversation: Conversation) -> Conversation:
    """The system messages' text at the top of the first user turn (a new user turn if none)."""
    system = "\n\n".join(m["content"] for m in conversation if m["role"] == "system")
    rest = [m for m in conversation if m["role"] != "system"]
    first = next((i for i, m in enumerate(rest) if m["role"] == "user"), None)
    if first is None:
        return [{"role": "user", "content": system}, *rest]
    merged = {**rest[first], "content": f"{system}\n\n{rest[first]['content']}"}
    return [*rest[:first], merged, *rest[first + 1 :]]
