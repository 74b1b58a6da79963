"""rank_fuse: the ranking parse on replies as models write them, and the two rounds."""

import pytest

from harness.benchmarks import get
from harness.config import ConfigError, ModelConfig, RunConfig
from harness.methods import knobs
from harness.methods.rank_fuse import RANK_INSTRUCTION, parse_ranking
from harness.plan import configurations
from harness.store import Store
from tests.conftest import FakeEngine, compose_config, fake_slot, run_execute

MODELS = {"small": ModelConfig(name="small", path="org/small", revision="r1")}


@pytest.mark.parametrize(
    "reply, n, ranking",
    [
        ("[2] > [1] > [3]", 3, [2, 1, 3]),
        ("Ranking: [3] > [2] > [1]\n\nResponse 3 explains the steps best.", 3, [3, 2, 1]),
        ("Response 4 is the best, followed by Response 1 and Response 2.", 4, [4, 1, 2]),
        ("2, 3, 1", 3, [2, 3, 1]),
        ("2 > 1", 3, [2, 1]),  # partial: the unranked one follows in shown order
        ("[2] > [2] > [9] > [1]", 3, [2, 1]),  # repeats and out-of-range numbers ignored
        ("The answer is 42 apples.", 3, []),  # numbers in prose are not a ranking
        ("", 3, []),
    ],
)
def test_parse_ranking(reply, n, ranking):
    assert parse_ranking(reply, n) == ranking


class RankingEngine(FakeEngine):
    """Ranks proposals 3 > 1 > 4 > 2 whenever it is asked to rank."""

    def chat(self, conversations, params):
        outs = super().chat(conversations, params)
        for i, conv in enumerate(conversations):
            if RANK_INSTRUCTION in conv[-1]["content"]:
                done = outs[i].completions[0]
                outs[i] = type(outs[i])(
                    outs[i].prompt_tokens, (type(done)("[3] > [1] > [4] > [2]", 9, "stop"),)
                )
        return outs


def study(bench_cfg, tmp_path, engine, **values):
    bench = get(bench_cfg)
    calls = []
    run = RunConfig(model=MODELS["small"], method=knobs("rank_fuse", **values), baseline=False)
    slot = fake_slot(MODELS, lambda m: engine(m.name, calls))
    records, stages = run_execute(
        configurations(run), bench.load(), bench, slot, Store(tmp_path / "s"), 0
    )
    return records, stages, calls


def test_keeps_the_top_ranked_and_fuses_only_those(bench_cfg, tmp_path):
    records, stages, calls = study(bench_cfg, tmp_path, RankingEngine, k=4, keep=2, shuffle=False)
    assert [s.stage for s in stages] == ["propose", "aggregate", "aggregate-2"]
    r = records[0]
    assert r["configuration"] == "rank_fuse(k=4,keep=2)" and r["outcome"] == "ok"
    assert [g["mode"] for g in r["rounds"]] == ["rank", "fuse"] and r["calls"] == 4 + 2
    assert r["order"] == [2, 0]  # shown 1..4 in sample order; [3] and [1] kept, best first
    fuse_prompt = calls[2][1][0][0]["content"]
    texts = [p["text"] for p in r["proposals"]]
    assert f"1. {texts[2]}" in fuse_prompt and f"2. {texts[0]}" in fuse_prompt
    assert texts[1] not in fuse_prompt and texts[3] not in fuse_prompt
    assert r["final_text"] == r["rounds"][1]["text"] == r["aggregation"]["text"]
    assert r["events"] == []


def test_unparseable_ranking_is_counted_and_keeps_sample_order(bench_cfg, tmp_path):
    records, _, calls = study(bench_cfg, tmp_path, FakeEngine, k=4)  # replies are no ranking
    r = records[0]
    assert r["events"] == ["rank_parse_failed"] and sorted(r["order"]) == [0, 1]  # keep = k // 2
    assert r["outcome"] == "ok"


def test_knobs_are_validated_and_reach_hydra():
    with pytest.raises(ConfigError, match=r"method.keep must be in \[1, k=4\]"):
        configurations(RunConfig(model=MODELS["small"], method=knobs("rank_fuse", k=4, keep=5)))
    cfg = compose_config("method=rank_fuse", "method.keep=2")
    assert (cfg.method.name, cfg.method.k, cfg.method.keep) == ("rank_fuse", 6, 2)
