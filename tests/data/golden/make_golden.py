"""Golden store and records from the pre-redesign core (commit b885efa), fake engine.

Kept for provenance: it uses the API before the redesign and does not run after it. The test
tests/test_golden.py serves these records from this store through the new core (made 0)."""
import json, shutil, sys
from pathlib import Path
sys.path.insert(0, "/work/main")
from harness.benchmarks import get
from harness.config import BenchmarkConfig, MethodConfig, ModelConfig, RunConfig
from harness.methods import ModelSlot, configurations, execute
from harness.store import Store
from tests.conftest import FakeEngine, write_gsm8k

out = Path(sys.argv[1]); shutil.rmtree(out, ignore_errors=True); out.mkdir(parents=True)
data = write_gsm8k(out / "data")
mt = data / "mt_bench"; mt.mkdir()
qs = [{"question_id": 1, "category": "writing", "turns": ["Write a line.", "Shorter."]},
      {"question_id": 2, "category": "math", "turns": ["2+2?", "Times 3?"]}]
(mt / "question.jsonl").write_text("".join(json.dumps(q) + "\n" for q in qs))
(mt / "reference_answer").mkdir()
(mt / "reference_answer" / "gpt-4.jsonl").write_text(json.dumps({"question_id": 2, "choices": [{"index": 0, "turns": ["4", "12"]}]}) + "\n")
MODELS = {n: ModelConfig(name=n, path=f"org/{n}", revision="r1") for n in ("small", "big", "judge")}
LIMIT = {"big": 950}   # the big aggregator's context is short: context policies fire
def factory(m):
    return FakeEngine(m.name, [], LIMIT.get(m.name, 10**9))
M = MethodConfig
studies = {
    "gsm8k": [
        M(name="majority_vote", k=3, temperature=0.7),
        M(name="self_moa", k=3, temperature=0.7),
        M(name="self_moa", k=4, temperature=0.7, shuffle=False, aggregator="big", label="self_moa_big_shorten"),
        M(name="self_moa", k=4, temperature=0.7, aggregator="big", context_policy="drop_longest", label="self_moa_big_drop"),
        M(name="self_moa", k=6, temperature=0.7, aggregator="big", context_policy="seq", label="self_moa_big_seq"),
        M(name="self_moa", k=3, temperature=0.7, layers=3),
        M(name="mixed_moa", mixture="ssb", temperature=0.7),
        M(name="mixed_moa", mixture="sbb", temperature=0.7, layers=3, aggregator="big", aggregator_temperature=0.5),
        M(name="self_moa_seq", k=5, window=3, reserved=1, temperature=0.7),
        M(name="usc", k=3, temperature=0.7, aggregator_max_tokens=64),
        M(name="single", temperature=0.7, model="big"),
    ],
    "mt_bench": [M(name="self_moa", k=2, temperature=0.7), M(name="usc", k=2, temperature=0.7)],
}
for bench_name, confs in studies.items():
    run = RunConfig(model=MODELS["small"], configurations=confs, letters={"s": "small", "b": "big"})
    bench = get(BenchmarkConfig(name=bench_name, data_dir=str(data), judge="judge" if bench_name == "mt_bench" else None))
    slot = ModelSlot(MODELS, factory)
    records, stages = execute(configurations(run), bench.load(), bench, slot, Store(out / "store"), 0, bench.cfg.judge)
    (out / f"records_{bench_name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    print(bench_name, len(records), [(s.stage, s.model, s.made) for s in stages])
