"""Replay engine: instant, deterministic texts with realistic lengths and answer forms.

For measuring the harness's own cost at paper scale without a model (scripts/paper_scale.py):
every stage, the store, scoring, records, W&B and the analysis run on texts that look like a
small instruction model's, but nothing is generated. NOT a model: its outputs say nothing about
any method. Its identity (`replay:<model>:...`, see `identity`) is the model part of every store
key, so a replayed generation can never be served as, or mistaken for, a real model's.

What a completion is (all drawn from one RNG seeded by the model, the conversation, the sampling
fields, and seed + j for sample j, so equal seeds repeat exactly and sample j does not depend on
n; greedy (temperature 0) samples are all the same text):
  * kind of prompt, from its text: CRUXEval (`[ANSWER]`), MATH (`\\boxed{}`), multiple choice
    (`Answer: X`), a USC selection ("most consistent response"), a judge prompt (`[[N]]` or a
    pairwise request), else free text (AlpacaEval, MT-Bench, GSM8K's `####` form);
  * length: lognormal around a per-kind median in tokens (`medians`, `sigma`), cut at
    min(max_tokens, context - prompt tokens) with finish_reason "length" (then no answer line:
    a cut response never got to its answer, as in real runs), else "stop";
  * body: reasoning sentences written for each kind (below), about `chars_per_token` characters
    per counted token;
  * answer: the prompt's "consensus" answer (a hash of the question: for MMLU a letter, for MATH
    a number, fraction, root or tuple taken from or built on the problem's numbers, for CRUXEval
    a literal built on the call's arguments, sometimes an expression that is no literal, e.g.
    `'ab'[::-1]`, which the grader evaluates in its sandbox) with the model's agreement
    probability, else another answer, in one of several real answer forms (the forms of
    tests/data/extraction/*.jsonl: "Answer: B", "**B**", "The answer is (B).", `\\boxed{}`,
    "[ANSWER] x [/ANSWER]", an assert line, ...); a few responses have no answer at all;
  * aggregations: the most frequent answer among the responses shown (read back from the
    replay's own answer lines), else the consensus, else another; a USC selection names the
    first response holding that answer.
Prompt tokens are characters / chars_per_token plus a few per message; a prompt at or over the
context (`max_model_len` of the model's engine_kwargs, else of engine.kwargs) is not sent
(`too_long`), as with vLLM.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections import Counter

from harness.config import EngineConfig, ModelConfig
from harness.engines.base import Completion, Conversation, Output, Sampling, too_long

VERSION = "1"  # bump when the texts change: old replay keys then miss instead of serving stale
DEFAULTS = {
    "max_model_len": 4096,
    "chars_per_token": 4.0,
    "sigma": 0.7,
    # median generated tokens per prompt kind (7B instruction models at T=0.7 are in this range)
    "medians": {
        "cruxeval": 220,
        "math": 480,
        "choice": 260,
        "select": 40,
        "judge": 120,
        "free": 420,
    },
    "agreement": [0.45, 0.8],  # a model's chance to give the consensus answer, by its name's hash
    "no_answer": 0.03,  # responses that end without any answer
    "expression": 0.04,  # CRUXEval answers written as an expression (sandbox-evaluated)
}

SENTENCES = {
    "cruxeval": [
        "Let me trace the function step by step with the given input.",
        "The function starts by initialising an empty result and then loops over the argument.",
        "In the first iteration the condition holds, so the element is appended.",
        "Next, the string is split on the separator and each part is checked in turn.",
        "The loop runs until the index reaches the length of the list.",
        "Since the dictionary already has this key, its value is updated instead of inserted.",
        "After the loop finishes, the function returns the accumulated value.",
        "Note that `str.replace` returns a new string and leaves the original unchanged.",
        "The slice `[::-1]` reverses the sequence, so the last character comes first.",
        "Checking the edge case: when the input is empty the loop body never runs.",
    ],
    "math": [
        "We begin by writing down what the problem gives us.",
        "Let $x$ denote the unknown quantity; then the condition becomes an equation in $x$.",
        "Substituting the first relation into the second gives a quadratic equation.",
        "Factoring, we get $(x - a)(x - b) = 0$, so there are two candidate values.",
        "We must check which of these satisfies the original constraint.",
        "Using the identity $\\sin^2\\theta + \\cos^2\\theta = 1$ simplifies the expression.",
        "The sum of the arithmetic series is $\\frac{n(n+1)}{2}$.",
        "By the Pythagorean theorem, the hypotenuse is $\\sqrt{a^2 + b^2}$.",
        "Simplifying the fraction by the greatest common divisor gives the reduced form.",
        "Therefore, combining the cases, we obtain the final value.",
    ],
    "choice": [
        "Let's consider each option in turn.",
        "Option A describes a related concept but does not match the definition in the question.",
        "Option B is consistent with the standard textbook account of this topic.",
        "Option C confuses cause and effect, so it can be ruled out.",
        "Option D would only hold under an additional assumption the question does not make.",
        "Recall the key principle involved here and apply it to the situation described.",
        "The question asks for the best answer, so we compare the remaining candidates.",
        "Historically, this view was developed in the early twentieth century.",
        "Eliminating the options that contradict the premise leaves one choice.",
        "This matches what we expect from the underlying mechanism.",
    ],
    "free": [
        "Here is a clear and structured answer to your question.",
        "First, it helps to understand the background and the main terms involved.",
        "There are several important points to keep in mind.",
        "For example, a common approach is to break the task into smaller steps.",
        "Another consideration is the trade-off between cost and quality.",
        "In practice, many people find it useful to start with a simple version.",
        "It is also worth checking the result against a few known cases.",
        "To summarise, the key ideas are simple but need care in the details.",
        "I hope this helps; let me know if you want more detail on any part.",
        "Finally, remember that the best choice depends on your specific situation.",
    ],
}
SENTENCES["select"] = ["The responses mostly agree on the final answer."]
SENTENCES["judge"] = ["The response is relevant, mostly accurate and reasonably detailed."]

_NUMBER = re.compile(r"(?<![\w.])\d{1,4}(?![\w.])")
# the replay's own answer forms (answer_line), read back from the responses an aggregator sees
_OWN_FORMS = [
    re.compile(r"\[ANSWER\]\n?(?:assert f\(\.\.\.\) == )?(.*?)\n?\[/ANSWER\]"),
    re.compile(r"^The function returns (.+)$", re.MULTILINE),
    re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}"),
    re.compile(r"(?:Answer: |answer is \(|answer is \*\*|answer is )([A-D])\b"),
]
_RESPONSE_START = re.compile(r"^(\d+)\. ", re.MULTILINE)


def _digest(*parts: object) -> int:
    text = json.dumps(parts, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def context_limit(model: ModelConfig, engine: EngineConfig) -> int:
    kwargs = {**DEFAULTS, **engine.kwargs, **model.engine_kwargs}
    return int(kwargs["max_model_len"])


def settings(model: ModelConfig, engine: EngineConfig) -> dict:
    merged = {**DEFAULTS, **engine.kwargs, **model.engine_kwargs}
    merged["medians"] = {**DEFAULTS["medians"], **(merged.get("medians") or {})}
    return merged


def kind_of(conversation: Conversation) -> str:
    """Which benchmark form the prompt asks for, from its last user turn."""
    last = conversation[-1]["content"] if conversation else ""
    if "most consistent" in last and "Response N" in last:
        return "select"
    if "[[" in last and "]]" in last and ("rating" in last.lower() or "[[N]]" in last):
        return "judge"
    if "[ANSWER]" in last:
        return "cruxeval"
    if "\\boxed" in last:
        return "math"
    if "Answer: X" in last or re.search(r"^\(?[A-D][.)] ", last, re.MULTILINE):
        return "choice"
    return "free"


def _question(conversation: Conversation) -> str:
    """The question part of the prompt: the last user turn (USC: the text after 'Question:')."""
    last = conversation[-1]["content"] if conversation else ""
    if last.startswith("Question:\n"):
        return last[len("Question:\n") :].split("\n\nCandidate responses:", 1)[0]
    return last


def _shown_responses(conversation: Conversation) -> list[str]:
    """The numbered responses an aggregation or USC prompt shows ('1. ...', '2. ...')."""
    for message in conversation:
        content = message["content"]
        for header in ("Responses from the assistants:", "Candidate responses:"):
            if header in content:
                block = content.split(header, 1)[1]
                starts = list(_RESPONSE_START.finditer(block))
                return [
                    block[m.end() : (starts[i + 1].start() if i + 1 < len(starts) else None)]
                    for i, m in enumerate(starts)
                ]
    return []


def _numbers(text: str) -> list[int]:
    return [int(x) for x in _NUMBER.findall(text)] or [2, 3, 5]


def _math_answer(rng: random.Random, numbers: list[int]) -> str:
    a, b = rng.choice(numbers), rng.choice(numbers) or 1
    form = rng.random()
    if form < 0.5:
        return str(a + rng.randint(-3, 3))
    if form < 0.7:
        g = math.gcd(a, b) or 1
        return f"\\frac{{{a // g}}}{{{max(b // g, 2)}}}"
    if form < 0.8:
        return f"{a % 9 + 1}\\sqrt{{{b % 7 + 2}}}"
    if form < 0.9:
        return f"({a}, {b})"
    if form < 0.95:
        return f"{a}\\pi"
    return f"\\text{{{rng.choice(['even', 'odd', 'neither'])}}}"


def _crux_answer(rng: random.Random, question: str, expression_rate: float) -> str:
    call = question.rsplit("f(", 1)[-1]
    words = re.findall(r"'([^'\\]{0,12})'", call) or ["ab", "c"]
    numbers = _numbers(call)
    form = rng.random()
    if form < 0.3:
        value = repr(rng.choice(words)[:: rng.choice([1, -1])])
    elif form < 0.55:
        value = repr(sorted(rng.sample(numbers, min(len(numbers), 3))))
    elif form < 0.7:
        value = str(sum(numbers) + rng.randint(-2, 2))
    elif form < 0.8:
        value = repr({w: i for i, w in enumerate(words[:3])})
    elif form < 0.9:
        value = rng.choice(["True", "False", "None"])
    else:
        value = repr(tuple(numbers[:2]))
    if rng.random() < expression_rate:  # no literal: graded by evaluating it in the sandbox
        value = rng.choice([f"{value!r}[::-1]", f"sorted({numbers[:3]})", f"len({words!r})"])
    return value


def consensus(kind: str, question: str, rng: random.Random, expression_rate: float) -> str:
    if kind == "choice":
        return rng.choice("ABCD")
    if kind == "math":
        return _math_answer(rng, _numbers(question))
    if kind == "cruxeval":
        return _crux_answer(rng, question, expression_rate)
    return ""


def answer_line(kind: str, answer: str, rng: random.Random) -> str:
    """`answer` in one of the answer forms real responses use."""
    if kind == "choice":
        return rng.choice(
            [
                f"Answer: {answer}",
                f"The answer is ({answer}).",
                f"The correct answer is **{answer}**.",
                f"Therefore, the answer is {answer}.\n\nAnswer: {answer}",
                f"**Answer: {answer}**",
            ]
        )
    if kind == "math":
        return rng.choice(
            [
                f"The final answer is $\\boxed{{{answer}}}$.",
                f"Therefore, the answer is $\\boxed{{{answer}}}$.",
                f"So the result is \\boxed{{{answer}}}",
                f"$$\\boxed{{{answer}}}$$",
            ]
        )
    if kind == "cruxeval":
        return rng.choice(
            [
                f"[ANSWER]\n{answer}\n[/ANSWER]",
                f"[ANSWER]{answer}[/ANSWER]",
                f"So the output is:\n\n[ANSWER]\nassert f(...) == {answer}\n[/ANSWER]",
                f"The function returns {answer}",
            ]
        )
    return ""


class ReplayEngine:
    """Engine kind `replay` (conf/engine/replay.yaml): no model, instant texts."""

    kind = "replay"
    reads_weights = False

    def __init__(self, model: ModelConfig, engine: EngineConfig, seed: int = 0):
        self.model_name = model.name
        self.load_s = 0.0
        self.deterministic = True
        self.settings = settings(model, engine)
        self.max_model_len = int(self.settings["max_model_len"])
        self.chars_per_token = float(self.settings["chars_per_token"])
        self.ident = self.identity(model, engine)
        low, high = self.settings["agreement"]
        self.agreement = low + (high - low) * (_digest(model.name) % 1000) / 999

    @staticmethod
    def identity(model: ModelConfig, engine: EngineConfig) -> str:
        """`replay:` and the model's name and source, the replay version, a digest of settings.

        Real identities start with `gguf:`, `local:`, `hub:` or `served:`; never `replay:`.
        """
        digest = hashlib.sha256(
            json.dumps(settings(model, engine), sort_keys=True, default=str).encode()
        ).hexdigest()[:12]
        return f"replay:{model.name}:{model.path}@{model.revision}:v{VERSION}:{digest}"

    @staticmethod
    def is_deterministic(model: ModelConfig, engine: EngineConfig) -> bool:
        return True

    def prompt_tokens(self, conversation: Conversation) -> int:
        chars = sum(len(m["content"]) for m in conversation)
        return math.ceil(chars / self.chars_per_token) + 4 * len(conversation) + 2

    def chat(self, conversations: list[Conversation], params: list[Sampling]) -> list[Output]:
        if len(conversations) != len(params):
            raise ValueError(f"{len(conversations)} conversations but {len(params)} params")
        return [self._one(c, p) for c, p in zip(conversations, params, strict=True)]

    def _one(self, conversation: Conversation, p: Sampling) -> Output:
        prompt = self.prompt_tokens(conversation)
        if prompt >= self.max_model_len:
            return too_long(prompt, self.max_model_len)
        room = min(p.max_tokens, self.max_model_len - prompt)
        kind = kind_of(conversation)
        question = _question(conversation)
        shown = _shown_responses(conversation)
        base = (self.ident, conversation, p.generation_fields())
        completions = []
        for j in range(p.n):
            sample = 0 if p.temperature == 0 else (p.seed or 0) + j
            rng = random.Random(_digest(*base, sample))
            completions.append(self._completion(rng, kind, question, shown, room))
        return Output(prompt, tuple(completions))

    def _completion(
        self, rng: random.Random, kind: str, question: str, shown: list[str], room: int
    ) -> Completion:
        s = self.settings
        tokens = max(1, round(rng.lognormvariate(math.log(s["medians"][kind]), float(s["sigma"]))))
        chosen = self._answer(rng, kind, question, shown)
        if kind == "select":
            answers = [_own_answer(text) for text in shown]
            pick = (
                answers.index(chosen) + 1 if chosen in answers else rng.randint(1, len(shown) or 1)
            )
            tail = f"The most consistent response is Response {pick}."
        elif kind == "judge":
            tail = f"Rating: [[{rng.randint(3, 9)}]]"
        elif chosen is None or kind not in ("choice", "math", "cruxeval"):
            tail = ""
        else:
            tail = answer_line(kind, chosen, rng)
        body = self._body(rng, kind, tokens)
        if tokens > room:  # cut at max_tokens (or the context): no answer line, as in real runs
            return Completion(body[: int(room * self.chars_per_token)], room, "length")
        return Completion(f"{body}\n\n{tail}" if tail else body, tokens, "stop")

    def _answer(self, rng: random.Random, kind: str, question: str, shown: list[str]) -> str | None:
        if kind in ("free", "judge"):
            return None
        s = self.settings
        common = consensus(kind, question, random.Random(_digest(question)), s["expression"])
        if kind != "select" and rng.random() < s["no_answer"]:
            return None
        if shown:  # an aggregation or a selection: mostly the answer most responses gave
            answers = [a for a in (_own_answer(t) for t in shown) if a is not None]
            if answers and rng.random() < max(self.agreement, 0.7):
                return Counter(answers).most_common(1)[0][0]
        if kind == "select":
            return None
        if rng.random() < self.agreement:
            return common
        return consensus(kind, question + str(rng.random()), rng, s["expression"])

    def _body(self, rng: random.Random, kind: str, tokens: int) -> str:
        pool = SENTENCES[kind if kind in SENTENCES else "free"]
        target = int(tokens * self.chars_per_token)
        parts, size = [], 0
        while size < target:
            sentence = pool[rng.randrange(len(pool))]
            parts.append(sentence)
            size += len(sentence) + 1
        return " ".join(parts)[:target]

    def close(self) -> None:
        pass


def _own_answer(text: str) -> str | None:
    """The answer of a replayed response (the last in the first of its forms found), else None."""
    for form in _OWN_FORMS:
        if found := form.findall(text):
            return found[-1].strip()
    return None
