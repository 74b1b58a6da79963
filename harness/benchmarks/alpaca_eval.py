"""AlpacaEval 2.0: 805 open instructions, judged pairwise against GPT-4 Turbo's reference outputs.

Source: `<data_dir>/alpaca_eval/results/gpt4_1106_preview/model_outputs.json` (a JSON list of
{instruction, output, generator, dataset}; `output` is the reference), else the hub dataset
`tatsu-lab/alpaca_eval` (config `alpaca_eval_gpt4_baseline`).

Prompt: the instruction alone, as the user turn. Scoring: the judge model (`benchmark.judge`)
compares the response with the reference twice, once with the response as Output (1) and once
as Output (2), so a judge that always prefers one position scores 0.5 instead of 0 or 1. The
item's score is the response's share of wins over the parsed orders (1, 0.5 or 0); replies
that name neither output are counted as `judge_unparsed` and the item is not scored. The
headline is the raw win rate against the reference (not AlpacaEval's length-controlled rate,
which needs its GLM fit over many models).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from harness.benchmarks.base import Item, JudgedBenchmark, read_bytes, undecodable
from harness.benchmarks.judge import pairwise_messages, pairwise_verdict
from harness.errors import DataError

REFERENCE_FILE = "alpaca_eval/results/gpt4_1106_preview/model_outputs.json"


class AlpacaEval(JudgedBenchmark):
    name = "alpaca_eval"
    label = "AlpacaEval 2.0"
    metric = "win_rate"

    def read(self) -> Iterator[Item]:
        for where, index, record in self.rows():
            if (fields := self.texts(where, record, "instruction", "output")) is None:
                continue
            instruction, output = fields
            yield Item(id=f"alpaca_eval/{index}", question=instruction, reference=output)

    def rows(self) -> Iterator[tuple[str, int, dict]]:
        path = self.local_file(REFERENCE_FILE)
        if path is None:
            yield from self.jsonl_rows(REFERENCE_FILE)  # the hub when there is no local file
            return
        self.report.source = str(path)
        text = read_bytes(path, self.label).decode("utf-8-sig", errors="surrogateescape")
        try:
            records = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as e:
            raise DataError(f"{self.label}: {path} is not valid JSON ({e})") from None
        if not isinstance(records, list):
            raise DataError(f"{self.label}: {path}: expected a JSON list of records")
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                self.report.skipped.append(f"{path}[{i}]: not a JSON object")
            elif undecodable(record):
                self.report.skipped.append(f"{path}[{i}]: not UTF-8")
            else:
                yield f"{path}[{i}]", i, record

    def messages(self, item: Item) -> list[dict[str, str]]:
        return [{"role": "user", "content": item.question}]

    def judge_conversations(self, item, conversation, response):
        return [
            pairwise_messages(item.question, response, item.reference),
            pairwise_messages(item.question, item.reference, response),
        ]

    def verdict(self, item, replies):
        return pairwise_verdict(replies)
