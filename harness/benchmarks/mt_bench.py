"""MT-Bench: 80 two-turn questions in 8 categories, rated 1-10 by a judge model.

Source: `<data_dir>/mt_bench/question.jsonl` ({question_id, category, turns[2]}) and the GPT-4
reference answers `<data_dir>/mt_bench/reference_answer/gpt-4.jsonl` ({question_id,
choices[0].turns}), used for the math, reasoning and coding questions; else the hub dataset
`HuggingFaceH4/mt_bench_prompts` ({prompt[2], reference, category}).

Turn 1 asks the first question. Turn 2 asks the second one in a conversation holding the first
question and the answer the same configuration gave to it (for an ensemble: its final answer),
so each configuration continues its own dialogue. The judge (`benchmark.judge`) rates each
answer 1-10 on its own, seeing the dialogue so far and, for math, reasoning and coding, the
reference answer of that turn; a reply without a readable rating is counted as
`judge_unparsed` and not scored. An answer that was never produced scores 1, the lowest rating.
Headline: the mean rating over both turns; `score_turn1` and `score_turn2` apart.
"""

from __future__ import annotations

from collections.abc import Iterator

from harness.benchmarks.base import Item, JudgedBenchmark
from harness.benchmarks.judge import parse_rating, rating_messages

REFERENCE_CATEGORIES = ("math", "reasoning", "coding")


class MTBench(JudgedBenchmark):
    name = "mt_bench"
    label = "MT-Bench"
    metric = "score"
    turns = 2
    failed_score = 1.0

    def read(self) -> Iterator[Item]:
        references = self.references()
        for where, index, record in self.jsonl_rows("mt_bench/question.jsonl"):
            turns = record.get("turns", record.get("prompt"))
            category = record.get("category")
            qid = record.get("question_id", record.get("prompt_id", index))
            if (
                not isinstance(turns, list)
                or len(turns) != self.turns
                or not all(isinstance(t, str) and t.strip() for t in turns)
            ):
                self.report.skipped.append(f"{where}: 'turns' is not a list of 2 non-empty texts")
                continue
            if not isinstance(category, str):
                self.report.skipped.append(f"{where}: missing 'category'")
                continue
            refs = ("", "")
            if category in REFERENCE_CATEGORIES:
                refs = references.get(qid) or tuple(record.get("reference") or ()) or refs
            yield Item(
                id=f"mt_bench/{qid}",
                question=turns[0],
                reference=refs[0],
                turns=tuple(turns),
                turn_references=tuple(refs),
                category=category,
            )

    def references(self) -> dict[int, tuple[str, ...]]:
        """GPT-4 reference answers by question id, from the local file when there is one."""
        path = self.local_file("mt_bench/reference_answer/gpt-4.jsonl")
        if path is None:
            return {}
        found = {}
        source = self.report.source
        for where, _, record in self.read_jsonl(path):
            try:
                turns = record["choices"][0]["turns"]
                found[record["question_id"]] = tuple(str(t) for t in turns)
            except (KeyError, IndexError, TypeError):
                self.report.skipped.append(f"{where}: no choices[0].turns or question_id")
        self.report.source = source
        return found

    def messages(self, item: Item) -> list[dict[str, str]]:
        return [{"role": "user", "content": item.question}]

    def judge_conversations(self, item, conversation, response):
        return [rating_messages(conversation, response, item.reference)]

    def verdict(self, item, replies):
        rating = parse_rating(replies[0]) if replies[0] is not None else None
        return rating, [rating]
